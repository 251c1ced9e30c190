"""Width and height of an encoded image, read from its header before anything is decoded.

The scoring service (engines/serve.py) must know how many pixels a body will decode to before it
lets OpenCV allocate them: an 875 KB PNG can declare 30000x30000. PNG, JPEG, BMP and WebP headers
are parsed here the way OpenCV's decoders read them (libpng IHDR, libjpeg's marker walk to the first
SOF, OpenCV's BMP header, libwebp's RIFF/VP8/VP8L/VP8X features). Every other format OpenCV could
decode (TIFF, GIF, JPEG 2000, AVIF, PNM/PAM/PFM, Radiance HDR, Sun raster) raises UnsupportedFormat,
so nothing reaches the decoder without a known size.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "WebP")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic, hierarchical):
# C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0..7: markers without a length field


class HeaderError(ValueError):
    """The bytes are not a well-formed header of a supported image format."""


class UnsupportedFormat(HeaderError):
    """The bytes are not PNG, JPEG, BMP or WebP; `format` names the other image format they start like, if any."""

    def __init__(self, message: str, format: str | None = None) -> None:
        super().__init__(message)
        self.format = format


# Signatures of the other formats OpenCV's imdecode reads (its decoders' checkSignature), to name them.
_OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"), (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"), (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\x76\x2f\x31\x01", "OpenEXR"), (b"PF", "PFM"), (b"Pf", "PFM"),
)


def _other_format(data: bytes) -> str | None:
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return "PNM/PAM"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"mif1", b"msf1"):
        return "AVIF"
    return None


@dataclass(frozen=True)
class ImageHeader:
    """What a header promises: the format and the decoded size in pixels."""

    format: str  # one of SUPPORTED_FORMATS
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_image_header(data: bytes) -> ImageHeader:
    """The format and size an encoded image declares; HeaderError if its header is malformed or truncated,
    UnsupportedFormat if it is not PNG, JPEG, BMP or WebP."""
    if data.startswith(PNG_SIGNATURE):
        header = _png(data)
    elif data.startswith(JPEG_SIGNATURE):
        header = _jpeg(data)
    elif data.startswith(b"BM"):
        header = _bmp(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        header = _webp(data)
    else:
        other = _other_format(data)
        raise UnsupportedFormat(f"{'a ' + other + ' image, ' if other else ''}not a "
                                f"{', '.join(SUPPORTED_FORMATS[:-1])} or {SUPPORTED_FORMATS[-1]} image", other)
    if header.width <= 0 or header.height <= 0:
        raise HeaderError(f"{header.format} header declares an empty image ({header.width}x{header.height})")
    return header


def _unpack(fmt: str, data: bytes, offset: int, what: str) -> tuple:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise HeaderError(f"{what} header is truncated") from None


def _png(data: bytes) -> ImageHeader:
    length, kind, width, height = _unpack(">I4sII", data, 8, "PNG")
    if kind != b"IHDR" or length != 13:
        raise HeaderError("PNG does not start with an IHDR chunk")
    return ImageHeader("PNG", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    """Walk the markers as libjpeg's next_marker does (bytes before 0xFF, fill 0xFFs and 0xFF00 are skipped)
    up to the first start-of-frame; a scan or end of image before it is an error."""
    pos = 2
    while True:
        while pos < len(data) and data[pos] != 0xFF:
            pos += 1
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            raise HeaderError("JPEG header is truncated (no start-of-frame marker)")
        marker = data[pos]
        pos += 1
        if marker == 0x00 or marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xDA, 0xD9, 0xD8):
            raise HeaderError(f"JPEG has marker 0x{marker:02X} before its start-of-frame")
        (length,) = _unpack(">H", data, pos, "JPEG")
        if marker in _JPEG_SOF:
            _, height, width = _unpack(">BHH", data, pos + 2, "JPEG")
            if height == 0:
                raise HeaderError("JPEG declares its height later (DNL marker): not supported")
            return ImageHeader("JPEG", width, height)
        if length < 2:
            raise HeaderError(f"JPEG segment 0x{marker:02X} has a bad length {length}")
        pos += length


def _bmp(data: bytes) -> ImageHeader:
    """OpenCV's BmpDecoder: a DIB header of 36+ bytes has signed 32-bit sizes (negative height = top-down),
    the 12-byte OS/2 header unsigned 16-bit ones; others are refused."""
    (size,) = _unpack("<I", data, 14, "BMP")
    if size >= 36:
        width, height = _unpack("<ii", data, 18, "BMP")
    elif size == 12:
        width, height = _unpack("<HH", data, 18, "BMP")
    else:
        raise HeaderError(f"BMP has an unknown {size}-byte info header")
    return ImageHeader("BMP", width, abs(height))


def _webp(data: bytes) -> ImageHeader:
    """The first chunk: VP8 (lossy key frame), VP8L (lossless) or VP8X (extended: the canvas size)."""
    (chunk,) = _unpack("4s", data, 12, "WebP")
    if chunk == b"VP8 ":
        start_code, width, height = _unpack("<3sHH", data, 23, "WebP")
        if start_code != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 chunk has no key-frame start code")
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        signature, bits = _unpack("<BI", data, 20, "WebP")
        if signature != 0x2F:
            raise HeaderError("WebP VP8L chunk has a bad signature")
        return ImageHeader("WebP", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if chunk == b"VP8X":
        w0, w1, w2, h0, h1, h2 = _unpack("<6B", data, 24, "WebP")
        return ImageHeader("WebP", 1 + (w0 | w1 << 8 | w2 << 16), 1 + (h0 | h1 << 8 | h2 << 16))
    raise HeaderError(f"WebP starts with an unknown chunk {chunk!r}")
