"""The avatar bundle as the media library sees it: its on-disk format and its reader (no Django)."""
