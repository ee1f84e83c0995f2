"""Read an uploaded portrait photo (JPEG, PNG or WebP): upright (EXIF orientation applied), RGB, at most
``max_side`` pixels, aspect ratio kept. Every way it can be unusable ends as a ``BadVideo`` the operator can
act on."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avatars_app.media_probe import STILL_IMAGES
from realtime.avatar.messages import gettext_noop

from .decode import DecodeLimits, check_resolution
from .errors import BadVideo

logger = logging.getLogger(__name__)


def is_photo(path: Path) -> bool:
    """Whether the file is a still image of an accepted format (the decoders tried are only those)."""
    try:
        with Image.open(path, formats=list(STILL_IMAGES)):
            return True
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return False


def read_photo(path: Path, limits: DecodeLimits) -> np.ndarray:
    """The photo as (H, W, 3) uint8 RGB, downscaled to ``limits.max_side`` on its long side."""
    try:
        with Image.open(path, formats=list(STILL_IMAGES)) as image:
            check_resolution(image.width, image.height, limits, "photo")
            upright = ImageOps.exif_transpose(image).convert("RGB")
            rgb = np.asarray(upright)
    except BadVideo:
        raise  # a ValueError too: its own message, not "cannot be decoded"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        logger.info("%s cannot be decoded: %s", path.name, exc)  # Pillow's words are for the log, not tenants
        raise BadVideo(
            "damaged", gettext_noop("The photo cannot be decoded. Upload the complete file again.")
        ) from None
    height, width = rgb.shape[:2]
    scale = min(1.0, limits.max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)
