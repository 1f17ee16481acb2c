"""Depth maps of objects' points from views around them (CLIP2Point's realistic projection), batched.

Every object of a frame is rendered from every view in one pass of tensor operations on the device:
points are fitted into the unit sphere per object, rotated into each view's camera frame, projected in
perspective, and splatted into a z-buffer (scatter-min of depth per pixel). Depth is then normalised
per view (nearest hit 1, farthest hit `far_intensity`, background 0), densified (a max-pool over
intensity: each pixel takes the nearest surface in its window, filling the gaps between LiDAR returns)
and smoothed (a Gaussian filter), as CLIP2Point does to make sparse splats look like real depth images.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DepthRenderConfig:
    """How objects are rendered (the defaults are the classifier's)."""

    # (azimuth, elevation) of each camera in degrees, looking at the object's centre. Four around the
    # object slightly from above (as a LiDAR sees it), two from higher up, so any heading is covered.
    views: tuple[tuple[float, float], ...] = ((0, 20), (90, 20), (180, 20), (270, 20), (45, 55), (225, 55))
    resolution: int = 112  # z-buffer side in pixels; upsampled to the image encoder's input size
    camera_distance: float = 2.2  # camera to object centre, in object radii (perspective strength)
    densify_kernel: int = 5  # max-pool window (odd) filling the holes between splats
    smooth_sigma: float = 1.0  # Gaussian filter sigma in pixels (0: none)
    far_intensity: float = 0.2  # the farthest hit of a view; the nearest is 1, background 0

    def __post_init__(self) -> None:
        if not self.views or self.resolution < 2 or self.camera_distance <= 1:
            raise ValueError('a render needs views, resolution >= 2 and camera_distance > 1 radius')
        if self.densify_kernel < 1 or self.densify_kernel % 2 == 0:
            raise ValueError(f'densify_kernel must be odd and >= 1, got {self.densify_kernel}')
        if not 0.0 < self.far_intensity < 1.0 or self.smooth_sigma < 0:
            raise ValueError('far_intensity must be in (0, 1) and smooth_sigma >= 0')


def view_rotations(views: tuple[tuple[float, float], ...], device: torch.device | str = 'cpu',
                   ) -> torch.Tensor:
    """(V, 3, 3) world -> camera rotations: rows are the camera's right, up and backward axes (the
    camera looks along -z towards the origin from (azimuth, elevation); up stays on the world's z)."""
    az, el = (torch.tensor([v[i] for v in views], dtype=torch.float64) * math.pi / 180 for i in (0, 1))
    zeros = torch.zeros_like(az)
    right = torch.stack([-torch.sin(az), torch.cos(az), zeros], -1)
    back = torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], -1)
    up = torch.linalg.cross(back, right)
    return torch.stack([right, up, back], 1).float().to(device)


def fit_unit_sphere(points: torch.Tensor, object_index: torch.Tensor, n_objects: int) -> torch.Tensor:
    """Points moved to their object's bounding-box centre and scaled into the unit sphere (an object
    of one point, or of identical points, stays at the origin)."""
    idx3 = object_index[:, None].expand(-1, 3)
    lo = torch.full((n_objects, 3), math.inf, device=points.device).scatter_reduce(0, idx3, points, 'amin')
    hi = torch.full((n_objects, 3), -math.inf, device=points.device).scatter_reduce(0, idx3, points, 'amax')
    centred = points - ((lo + hi) / 2)[object_index]
    radius = torch.zeros(n_objects, device=points.device).scatter_reduce(
        0, object_index, centred.norm(dim=1), 'amax')
    return centred / radius.clamp_min(1e-6)[object_index, None]


def project_depth(points: torch.Tensor, object_index: torch.Tensor, n_objects: int,
                  config: DepthRenderConfig) -> torch.Tensor:
    """(B, V, R, R) per-view normalised intensity of the z-buffer: the nearest splat of each pixel,
    1 for the view's nearest hit, `far_intensity` for its farthest, 0 where no point lands."""
    res, n_views = config.resolution, len(config.views)
    with torch.autocast(points.device.type, enabled=False):  # geometry in float32 under a bf16 caller
        cam = torch.einsum('vij,nj->vni', view_rotations(config.views, points.device),
                           fit_unit_sphere(points.float(), object_index, n_objects))
    depth = config.camera_distance - cam[..., 2]  # (V, N) > 0: every point lies in the unit sphere
    focal = math.sqrt(config.camera_distance ** 2 - 1)  # the unit sphere just fills the image
    col = ((cam[..., 0] / depth * focal + 1) / 2 * res).long().clamp(0, res - 1)
    row = ((1 - cam[..., 1] / depth * focal) / 2 * res).long().clamp(0, res - 1)
    views = torch.arange(n_views, device=points.device)[:, None]
    image = (object_index[None] * n_views + views) * res * res + row * res + col
    zbuf = torch.full((n_objects * n_views * res * res,), math.inf, device=points.device)
    zbuf = zbuf.scatter_reduce(0, image.reshape(-1), depth.reshape(-1), 'amin').view(n_objects, n_views, -1)
    hit = torch.isfinite(zbuf)
    near = zbuf.amin(-1, keepdim=True)  # empty pixels are inf
    far = torch.where(hit, zbuf, -math.inf).amax(-1, keepdim=True)
    span = (far - near).clamp_min(1e-6)
    scaled = 1 - (1 - config.far_intensity) * (zbuf - near) / span
    return torch.where(hit, scaled, 0.0).view(n_objects, n_views, res, res)


def render_depth(points: torch.Tensor, offsets: torch.Tensor, config: DepthRenderConfig,
                 size: int | None = None) -> torch.Tensor:
    """Packed objects (points (M, >=3), offsets (B+1,)) -> (B, V, size, size) depth images in [0, 1]:
    projected, densified, smoothed and resized to `size` (None: the z-buffer's resolution). Objects
    without points come out black."""
    counts = offsets[1:] - offsets[:-1]
    n = len(counts)
    object_index = torch.repeat_interleave(torch.arange(n, device=points.device), counts.to(points.device))
    image = project_depth(points[:, :3], object_index, n, config).flatten(0, 1)[:, None]
    if config.densify_kernel > 1:
        image = dilate(image, config.densify_kernel)
    if config.smooth_sigma > 0:
        image = gaussian_blur(image, config.smooth_sigma)
    if size is not None and size != config.resolution:
        image = F.interpolate(image, size=(size, size), mode='bilinear', align_corners=False)
    return image.view(n, len(config.views), *image.shape[-2:])  # in [0, 1]: every filter averages or maxes


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, 1, H, W) images filtered by a separable Gaussian of `sigma` pixels (3 sigma each side, edges
    replicated)."""
    half = max(1, math.ceil(3 * sigma))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    weights = torch.exp(-x ** 2 / (2 * sigma ** 2))
    weights = (weights / weights.sum()).tolist()
    return _separable(images, half, lambda taps: sum(w * t for w, t in zip(weights, taps)), 'replicate')


def dilate(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """(N, 1, H, W) images -> the maximum over each pixel's kernel x kernel window (max-pool, stride 1)."""
    return _separable(images, kernel // 2, lambda taps: functools.reduce(torch.maximum, taps), 'constant')


def _separable(images: torch.Tensor, half: int, reduce, mode: str) -> torch.Tensor:
    """A separable window filter as shifted slices (rows, then columns): for single-channel images
    this is several times faster than conv2d / max_pool2d on the CPU, and as fast on a GPU."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (half, half, 0, 0), mode=mode)
    images = reduce([padded[..., :, i:i + w] for i in range(2 * half + 1)])
    padded = F.pad(images, (0, 0, half, half), mode=mode)
    return reduce([padded[..., i:i + h, :] for i in range(2 * half + 1)])
