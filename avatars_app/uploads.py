"""Uploads accepted by what they are: a Voice's reference audio must decode as audio, an avatar source must be a
video in an allowed container or a JPEG/PNG/WebP photo. The stored name gets the detected type's extension, so
a file is served as what it was found to be (issue 10, High 1). The API and the admin call the same checks.
"""

from __future__ import annotations

from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import slugify
from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings

from .media_probe import MediaRefused, probe_audio, probe_image, probe_video


def accept_reference_audio(upload: UploadedFile) -> UploadedFile:
    """The upload, renamed after its detected type, if it is audio within the size and duration limits."""
    max_mb = livehuman_settings.VOICE_REFERENCE_MAX_MB
    if upload.size > max_mb * 1024 * 1024:
        raise ValidationError(
            _("The reference audio may be at most %(limit)d MB.") % {"limit": max_mb}, code="too_large"
        )
    max_seconds = float(livehuman_settings.VOICE_REFERENCE_MAX_SECONDS)
    try:
        probe = probe_audio(_rewound(upload), max_seconds=max_seconds)
    except MediaRefused as refused:
        if refused.code == "too_long":
            message = _("The reference audio may be at most %(seconds)d seconds long.") % {"seconds": max_seconds}
        else:
            message = _("This file is not audio that can be decoded. Upload a WAV, MP3, FLAC, OGG or M4A file.")
        raise ValidationError(message, code=f"audio_{refused.code}") from None
    return _renamed(upload, probe.extension)


def accept_avatar_source(upload: UploadedFile) -> UploadedFile:
    """The upload, renamed after its detected type, if it is a video (MP4, MOV, MKV/WebM, AVI) whose first
    frame decodes, or a JPEG, PNG or WebP photo."""
    max_pixels = livehuman_settings.AVATAR_MAX_SOURCE_SIDE**2
    try:
        extension = probe_image(_rewound(upload), max_pixels=max_pixels)
        if extension is None:
            extension = probe_video(_rewound(upload), max_pixels=max_pixels)
    except MediaRefused as refused:
        raise ValidationError(_source_message(refused.code), code=f"source_{refused.code}") from None
    return _renamed(upload, extension)


def _source_message(code: str) -> str:
    if code == "too_large":
        side = livehuman_settings.AVATAR_MAX_SOURCE_SIDE
        return _("The picture is larger than %(side)d×%(side)d pixels.") % {"side": side}
    if code == "no_video":
        return _("The file contains no video stream (only audio?). Upload a video or a photo of the person.")
    if code == "no_frames":
        return _("The video contains no frames. Upload a video or a photo of the person.")
    if code == "damaged":
        return _("The video cannot be decoded: it is damaged or truncated. Upload the complete file again.")
    return _(
        "This file is not a video or photo that can be read. Upload an MP4, MOV, WebM, MKV or AVI video,"
        " or a JPEG, PNG or WebP photo."
    )


def _rewound(upload: UploadedFile) -> UploadedFile:
    upload.seek(0)
    return upload


def _renamed(upload: UploadedFile, extension: str) -> UploadedFile:
    upload.seek(0)
    stem = slugify(PurePath(upload.name or "").stem)[:60] or "upload"
    upload.name = f"{stem}.{extension}"
    return upload
