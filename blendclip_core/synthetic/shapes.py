"""Parametric driving objects: the 10 nuScenes detection classes and a few open-vocabulary extras.

Each class is data (`ClassSpec`: size statistics, variants, caption words) plus one builder that makes a
trimesh in the nuScenes box frame: x along the box length (heading), y to the left, z up, the box
centred at the origin and the object standing on its bottom face. Sizes are drawn per object from a
normal distribution around nuScenes-like means (l, w, h), so a car is never as tall as a bus and a
barrier is long across its heading, as annotated in nuScenes.

The dense 'synthetic CAD' domain is `sample_surface(mesh, n)`; the simulated LiDAR (lidar.py) sees the
same meshes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import trimesh

from blendclip_core.synthetic import parts as P


@dataclass(frozen=True)
class Variant:
    name: str  # sub-type, used in captions ('pickup truck')
    weight: float = 1.0  # relative frequency
    size_mean: tuple[float, float, float] | None = None  # overrides the class mean (l, w, h), metres
    size_std: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class ClassSpec:
    name: str  # natural-language label, the vocabulary entry ('traffic cone')
    coarse: str  # nuScenes detection class ('traffic_cone'), '' for classes outside the benchmark
    size_mean: tuple[float, float, float]  # l, w, h in metres (nuScenes-like means)
    size_std: tuple[float, float, float]
    variants: tuple[Variant, ...]
    builder: Callable[[np.random.Generator, float, float, float, str], trimesh.Trimesh] = field(
        repr=False, compare=False, default=None)  # (rng, l, w, h, variant) -> mesh in box frame
    tight: bool = True  # box hugs the object on all sides (vehicles); loose boxes (people) do not


@dataclass
class GeneratedObject:
    """One drawn instance: its mesh in the box frame and what was drawn."""

    spec: ClassSpec
    variant: str
    size_lwh: np.ndarray
    mesh: trimesh.Trimesh
    attributes: dict = field(default_factory=dict)


# --- builders (z from 0 at the ground to h; centred in x/y; fitted to the box afterwards) -------------


def _wheels(ln: float, w: float, r: float, axles_x: list[float], width: float = 0.24) -> list:
    y = w / 2 - width / 2
    return [P.wheel([x, s * y, r], r, width) for x in axles_x for s in (-1, 1)]


# Side profile per car body, as fractions: (shoulder of h, hood of l, trunk of l, front-screen slope of l,
# rear-window slope of l, ground clearance in metres). Each object jitters them by up to 12 %.
_CAR_BODIES: dict[str, tuple[float, float, float, float, float, float]] = {
    'sedan': (0.55, 0.28, 0.20, 0.22, 0.12, 0.15), 'hatchback': (0.55, 0.26, 0.06, 0.22, 0.06, 0.15),
    'SUV': (0.58, 0.22, 0.04, 0.2, 0.03, 0.2), 'van': (0.45, 0.10, 0.02, 0.05, 0.02, 0.2),
    'station wagon': (0.55, 0.27, 0.03, 0.22, 0.03, 0.15), 'minivan': (0.5, 0.16, 0.02, 0.14, 0.03, 0.17),
    'compact car': (0.55, 0.2, 0.05, 0.2, 0.08, 0.14), 'coupe': (0.6, 0.3, 0.18, 0.25, 0.2, 0.12),
}


def build_car(rng, ln, w, h, variant):
    shoulder, hood, trunk, slope_f, slope_r, clear = np.asarray(_CAR_BODIES[variant]) * rng.uniform(
        0.88, 1.12, 6)
    r = float(np.clip(0.19 * h + rng.normal(0, 0.02), 0.27, 0.42))
    x0, x1 = -ln / 2, ln / 2
    body = P.taper(x0, x1, -w / 2, w / 2, clear, shoulder * h, top_x=(x0 + 0.02 * ln, x1 - 0.04 * ln))
    cx0, cx1 = x0 + trunk * ln, x1 - hood * ln
    cabin = P.taper(cx0, cx1, -0.47 * w, 0.47 * w, shoulder * h, h,
                    top_x=(cx0 + slope_r * ln, max(cx0 + slope_r * ln + 0.3, cx1 - slope_f * ln)),
                    top_y=(-0.4 * w, 0.4 * w))
    parts = [body, cabin, *_wheels(ln, w, r, [x0 + 0.18 * ln, x1 - 0.19 * ln], 0.22)]
    if rng.random() < 0.12:  # roof box or rack: the box's top is then the rack's
        parts.append(P.box(cx0 + 0.1 * ln, cx1 - 0.1 * ln, -0.3 * w, 0.3 * w, h, h + 0.15))
    return P.combine(parts)


def _cargo_blocks(rng, x0: float, x1: float, w: float, z: float, top: float) -> list:
    """Crates, pallets or pipes on a flat deck from x0 to x1 (flatbeds of trucks and trailers)."""
    blocks, x = [], x0 + 0.3
    while x < x1 - 1.0:
        cl = float(rng.uniform(1.2, 3.5))
        ch = float(rng.uniform(0.5, 1.0)) * (top - z)
        blocks.append(P.box(x, min(x + cl, x1 - 0.2), -0.45 * w, 0.45 * w, z, z + ch))
        x += cl + float(rng.uniform(0.1, 1.0))
    return blocks


def _box_cargo(rng, x0, xc, w, h):
    return [P.box(x0, xc - 0.1, -w / 2, w / 2, 0.9, h)]


def _pickup_bed(rng, x0, xc, w, h):
    top = 0.62 * h
    return [P.box(x0, xc, -w / 2, w / 2, 0.6, 0.75), P.box(x0, xc, -w / 2, -w / 2 + 0.08, 0.75, top),
            P.box(x0, xc, w / 2 - 0.08, w / 2, 0.75, top), P.box(x0, x0 + 0.08, -w / 2, w / 2, 0.75, top)]


def _open_bin(x0, x1, w, z, h, wall=0.1):
    """An open-topped box (dump bodies, skips): floor and four walls."""
    return [P.box(x0, x1, -w / 2, w / 2, z, z + wall), P.box(x0, x1, -w / 2, -w / 2 + wall, z, h),
            P.box(x0, x1, w / 2 - wall, w / 2, z, h), P.box(x0, x0 + wall, -w / 2, w / 2, z, h),
            P.box(x1 - wall, x1, -w / 2, w / 2, z, h)]


def _dump_body(rng, x0, xc, w, h):
    return _open_bin(x0, xc - 0.2, w, 1.0, h)


def _flatbed(rng, x0, xc, w, h):
    deck = float(rng.uniform(1.0, 1.25))
    return [P.box(x0, xc - 0.1, -w / 2, w / 2, deck - 0.15, deck),
            P.box(xc - 0.25, xc - 0.1, -w / 2, w / 2, deck, h), *_cargo_blocks(rng, x0, xc - 0.3, w, deck, h)]


def _mixer_drum(rng, x0, xc, w, h):
    cz = 1.0 + (h - 1.0) / 2
    return [P.ellipsoid([(x0 + xc) / 2, 0, cz], [(xc - x0) / 2 - 0.1, 0.45 * w, (h - 1.0) / 2]),
            P.rod([x0 + 0.2, 0, cz], [x0 - 0.05, 0, h - 0.2], 0.25)]


def _fifth_wheel(rng, x0, xc, w, h):
    """A tractor unit without its trailer: bare chassis, coupling plate, fairing over the cab."""
    return [P.box(x0 + 0.3, x0 + 1.4, -0.4 * w, 0.4 * w, 0.95, 1.1),
            P.taper(xc, xc + 1.2, -0.45 * w, 0.45 * w, 0.75 * h, h, top_x=(xc, xc + 0.6))]


def _refuse_body(rng, x0, xc, w, h):
    return [P.box(x0 + 0.8, xc - 0.1, -w / 2, w / 2, 0.9, h),
            P.taper(x0, x0 + 0.8, -w / 2, w / 2, 0.6, h, top_x=(x0 + 0.5, x0 + 0.8))]


# Truck bodies: cargo builder (rng, rear x, cab rear x, w, h), the cab's height as a fraction of h and
# its cap in metres (a tractor's roof fairing, not its cab, reaches the top of the box).
_TRUCK_BODIES: dict[str, tuple[Callable, float, float]] = {
    'box truck': (_box_cargo, 1.0, 2.9), 'pickup truck': (_pickup_bed, 1.0, 9.0),
    'dump truck': (_dump_body, 1.0, 2.9), 'flatbed truck': (_flatbed, 1.0, 2.9),
    'cement mixer truck': (_mixer_drum, 1.0, 2.9), 'semi-tractor': (_fifth_wheel, 0.75, 9.0),
    'garbage truck': (_refuse_body, 1.0, 2.9),
}


def build_truck(rng, ln, w, h, variant):
    cargo, cab_fraction, cab_cap = _TRUCK_BODIES[variant]
    r = float(np.clip(0.15 * h, 0.38, 0.55))
    x0, x1 = -ln / 2, ln / 2
    cab_len = float(np.clip(rng.uniform(0.22, 0.3) * ln, 1.6, 2.6))
    cab_h = min(cab_fraction * h, cab_cap)
    cab = P.taper(x1 - cab_len, x1, -w / 2, w / 2, 0.4, cab_h, top_x=(x1 - cab_len, x1 - 0.3))
    chassis = P.box(x0, x1 - cab_len, -0.35 * w, 0.35 * w, 0.5, 0.9)
    axles = [x1 - cab_len + r + 0.1, x0 + 0.2 * ln] + ([x0 + 0.2 * ln + 2.3 * r] if ln > 8 else [])
    return P.combine([cab, chassis, *cargo(rng, x0, x1 - cab_len, w, h), *_wheels(ln, w, r, axles, 0.3)])


def build_trailer(rng, ln, w, h, variant):
    r = 0.45
    x0, x1 = -ln / 2, ln / 2
    deck = 1.1
    hitch = P.rod([x1 - 0.6, 0, 0.9], [x1, 0, 0.9], 0.08)
    legs = [P.rod([x1 - 1.5, s * 0.35 * w, 0.0], [x1 - 1.5, s * 0.35 * w, deck], 0.06) for s in (-1, 1)]
    if variant == 'box trailer':
        body = [P.box(x0, x1 - 0.6, -w / 2, w / 2, deck, h)]
    elif variant == 'tank trailer':
        rad = min(w / 2, (h - deck) / 2)
        t = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
        t[:3, 3] = [(x0 + x1 - 0.6) / 2, 0, h - rad]
        body = [trimesh.creation.cylinder(radius=rad, height=ln - 0.6, sections=16, transform=t),
                P.box(x0, x1 - 0.6, -0.3 * w, 0.3 * w, deck - 0.2, h - 2 * rad + 0.05)]
    else:  # flatbed with cargo; the headboard keeps the box tight
        body = [P.box(x0, x1 - 0.6, -w / 2, w / 2, deck, deck + 0.25),
                *_cargo_blocks(rng, x0, x1 - 0.6, w, deck + 0.25, h),
                P.box(x0, x0 + 0.1, -w / 2, w / 2, deck, h)]
    axles = [x0 + 1.0 + i * 1.3 for i in range(2 if ln < 10 else 3)]
    return P.combine([*body, hitch, *legs, *_wheels(ln, w, r, axles, 0.3)])


def _bus_shell(x0, x1, w, h, front_slope=0.25):
    return P.taper(x0, x1, -w / 2, w / 2, 0.3, h, top_x=(x0 + 0.1, x1 - front_slope),
                   top_y=(-w / 2 + 0.15, w / 2 - 0.15))


def _bus_axles(x0, x1):
    return [x1 - 2.5, x0 + 2.8]


def _single_deck(x0, x1, w, h, ln):
    return [_bus_shell(x0, x1, w, h)], _bus_axles(x0, x1)


def _articulated(x0, x1, w, h, ln):
    mid = x0 + 0.4 * ln
    return [P.taper(mid + 0.4, x1, -w / 2, w / 2, 0.3, h, top_x=(mid + 0.4, x1 - 0.25)),
            P.taper(x0, mid - 0.4, -w / 2, w / 2, 0.3, h, top_x=(x0 + 0.1, mid - 0.4)),
            P.box(mid - 0.4, mid + 0.4, -0.4 * w, 0.4 * w, 0.5, h - 0.2)], [*_bus_axles(x0, x1), mid + 2.0]


def _school_bus(x0, x1, w, h, ln):  # a hooded front
    hood = P.taper(x1 - 1.6, x1, -0.4 * w, 0.4 * w, 0.4, 0.45 * h, top_x=(x1 - 1.6, x1 - 0.2))
    return [_bus_shell(x0, x1 - 1.6, w, h, 0.1), hood], _bus_axles(x0, x1)


def _double_decker(x0, x1, w, h, ln):  # upper deck set back a little: a step in the roof line
    return [_bus_shell(x0, x1, w, 0.55 * h, 0.05), _bus_shell(x0, x1 - 0.3, w, h, 0.3)], _bus_axles(x0, x1)


def _minibus(x0, x1, w, h, ln):  # a short bonnet, axles near the ends
    return [_bus_shell(x0, x1, w, h, 0.9)], [x1 - 0.25 * ln, x0 + 0.25 * ln]


# Bus bodies: (x0, x1, w, h, l) -> (parts, axle x positions); wheel radius 0.5 m, minibus 0.38 m.
_BUS_BODIES: dict[str, Callable] = {
    'city bus': _single_deck, 'coach bus': _single_deck, 'articulated bus': _articulated,
    'school bus': _school_bus, 'double-decker bus': _double_decker, 'minibus': _minibus,
}


def build_bus(rng, ln, w, h, variant):
    parts, axles = _BUS_BODIES[variant](-ln / 2, ln / 2, w, h, ln)
    return P.combine([*parts, *_wheels(ln, w, 0.38 if variant == 'minibus' else 0.5, axles, 0.3)])


def _excavator(rng, x0, x1, w, h, ln):
    track_h = 0.9
    hx1 = x0 + 0.55 * ln
    peak = [hx1 + rng.uniform(0.15, 0.3) * ln, 0.0, h - 0.1]
    bucket_x = x1 - 0.3 - rng.uniform(0, 0.15) * ln  # arm poses vary: boom peak and bucket reach
    return [P.box(x0, x0 + 0.6 * ln, -w / 2, -w / 2 + 0.6, 0, track_h),
            P.box(x0, x0 + 0.6 * ln, w / 2 - 0.6, w / 2, 0, track_h),
            P.box(x0, hx1, -0.45 * w, 0.45 * w, track_h, min(h, 2.3)),
            P.box(hx1 - 1.2, hx1, -0.45 * w, -0.05 * w, min(h, 2.3), min(h, 3.0)),
            P.rod([hx1, 0.1 * w, 1.6], peak, 0.2), P.rod(peak, [bucket_x, 0, 0.7], 0.15),
            P.taper(bucket_x - 0.5, x1, -0.4, 0.4, 0.0, 0.8, top_x=(bucket_x - 0.3, x1))]


def _wheel_loader(rng, x0, x1, w, h, ln):
    r = float(np.clip(0.2 * h, 0.55, 0.8))
    return [*_wheels(ln, w, r, [x0 + 0.25 * ln, x0 + 0.6 * ln], 0.45),
            P.box(x0, x0 + 0.75 * ln, -0.4 * w, 0.4 * w, 0.5, 0.55 * h),
            P.box(x0 + 0.35 * ln, x0 + 0.6 * ln, -0.35 * w, 0.35 * w, 0.55 * h, h),
            P.taper(x1 - 0.9, x1, -w / 2, w / 2, 0.05, 1.0 + rng.uniform(0, 0.8), top_x=(x1 - 0.9, x1 - 0.5)),
            P.rod([x0 + 0.7 * ln, 0, 1.2], [x1 - 0.8, 0, 0.7], 0.15)]


def _road_roller(rng, x0, x1, w, h, ln):
    r = float(np.clip(0.35 * h, 0.6, 0.8))
    return [P.wheel([x1 - r, 0, r], r, w), *_wheels(ln, w, 0.7, [x0 + 0.8], 0.5),
            P.box(x0, x1 - 2 * r - 0.1, -0.4 * w, 0.4 * w, 0.6, 0.55 * h),
            P.box(x0 + 0.3, x1 - 2 * r - 0.3, -0.35 * w, 0.35 * w, 0.55 * h, h)]


def _bulldozer(rng, x0, x1, w, h, ln):
    blade_h = float(rng.uniform(0.35, 0.5)) * h
    return [P.box(x0 + 0.3, x1 - 0.7, -w / 2, -w / 2 + 0.55, 0, 0.9),
            P.box(x0 + 0.3, x1 - 0.7, w / 2 - 0.55, w / 2, 0, 0.9),
            P.box(x0 + 0.3, x1 - 0.8, -0.4 * w, 0.4 * w, 0.9, 0.55 * h),
            P.box(x0 + 0.4, x0 + 0.45 * ln, -0.35 * w, 0.35 * w, 0.55 * h, h),
            P.taper(x1 - 0.35, x1, -w / 2, w / 2, 0.0, blade_h, top_x=(x1 - 0.2, x1)),
            P.rod([x0 + 0.35, 0, 0.9], [x0, 0, 0.1], 0.08)]  # ripper


def _mobile_crane(rng, x0, x1, w, h, ln):
    r = 0.55
    turret = x0 + 0.3 * ln
    boom_end = [x1 - rng.uniform(0.0, 0.15) * ln, 0.25 * w, h - 0.3]
    return [P.box(x0, x1, -0.45 * w, 0.45 * w, 0.6, 1.6), *_wheels(ln, w, r, list(np.linspace(
            x0 + 1.0, x1 - 1.2, 4)), 0.35), P.box(x1 - 1.8, x1, -w / 2, -0.05 * w, 0.9, 0.8 * h),
            P.box(turret - 1.3, turret + 1.3, -0.45 * w, 0.45 * w, 1.6, 0.75 * h),
            P.box(x0, x0 + 1.0, -0.4 * w, 0.4 * w, 1.6, 0.7 * h),  # counterweight
            P.rod([turret, 0.25 * w, 0.75 * h], boom_end, 0.28)]


def _backhoe_loader(rng, x0, x1, w, h, ln):
    return [P.wheel([x0 + 0.3 * ln, s * (w / 2 - 0.25), 0.7], 0.7, 0.5) for s in (-1, 1)] + [
            *_wheels(ln, w, 0.45, [x1 - 0.3 * ln], 0.35),
            P.box(x0 + 0.2 * ln, x1 - 0.2 * ln, -0.4 * w, 0.4 * w, 0.5, 1.5),
            P.box(x0 + 0.22 * ln, x0 + 0.5 * ln, -0.4 * w, 0.4 * w, 1.5, h),  # cab
            P.taper(x1 - 0.7, x1, -w / 2, w / 2, 0.1, 0.9, top_x=(x1 - 0.7, x1 - 0.4)),  # front bucket
            P.rod([x0 + 0.2 * ln, 0, 1.3], [x0 + 0.05 * ln, 0, rng.uniform(0.7, 0.9) * h], 0.12),
            P.rod([x0 + 0.05 * ln, 0, rng.uniform(0.7, 0.9) * h], [x0, 0, 0.3], 0.1)]


_CONSTRUCTION_BODIES: dict[str, Callable] = {
    'excavator': _excavator, 'wheel loader': _wheel_loader, 'road roller': _road_roller,
    'bulldozer': _bulldozer, 'mobile crane': _mobile_crane, 'backhoe loader': _backhoe_loader,
}


def build_construction(rng, ln, w, h, variant):
    return P.combine(_CONSTRUCTION_BODIES[variant](rng, -ln / 2, ln / 2, w, h, ln))


def _rider(x_seat: float, z_seat: float, x_hands: float, z_hands: float, h: float, feet_x: float,
           lean: float = 0.0, pedal: float = 0.0):
    """A seated person for two-wheelers (boxes of cycles with riders include the rider in nuScenes).

    lean: forward shift of the shoulders (metres); pedal: crank angle (radians) placing the two feet.
    """
    torso_top = z_seat + 0.55 * (h - z_seat)
    xs = x_seat + 0.1 + lean
    feet = [(feet_x + s * 0.17 * np.cos(pedal), 0.3 + s * 0.17 * np.sin(pedal)) for s in (1, -1)]
    return [P.ellipsoid([x_seat + 0.1 + lean / 2, 0, (z_seat + torso_top) / 2],
                        [0.14 + abs(lean) / 3, 0.18, (torso_top - z_seat) / 2]),
            P.ellipsoid([xs + 0.06, 0, h - 0.11], [0.1, 0.09, 0.11]),
            P.rod([x_seat, -0.1, z_seat], [feet[0][0], -0.13, feet[0][1]], 0.06),
            P.rod([x_seat, 0.1, z_seat], [feet[1][0], 0.13, feet[1][1]], 0.06),
            P.rod([xs + 0.05, -0.17, torso_top - 0.05], [x_hands, -0.2, z_hands], 0.04),
            P.rod([xs + 0.05, 0.17, torso_top - 0.05], [x_hands, 0.2, z_hands], 0.04)]


def _riding(rng, x_seat, z_seat, x_hands, z_hands, h, feet_x):
    """A rider in a drawn pose: leaning 0-25 cm forward, pedals anywhere on the turn."""
    return _rider(x_seat, z_seat, x_hands, z_hands, h, feet_x, float(rng.uniform(0.0, 0.25)),
                  float(rng.uniform(0, 2 * np.pi)))


class _Cycle(NamedTuple):
    """Where a drawn bicycle's parts are (metres, box frame): what riders and loads attach to."""

    crank_x: float
    front_x: float  # front axle
    wheel_r: float
    width: float
    seat_z: float
    bar_z: float
    height: float  # of the box


def _no_load(rng, c: _Cycle) -> list:
    return []


def _cyclist(rng, c: _Cycle) -> list:
    return _riding(rng, c.crank_x - 0.12, c.seat_z + 0.05, c.front_x - 0.12, c.bar_z, c.height,
                   c.crank_x + 0.05)


def _basket(rng, c: _Cycle) -> list:
    return [P.box(c.front_x - 0.3, c.front_x + 0.05, -0.17, 0.17, c.bar_z - 0.3, c.bar_z)]


def _cargo_box(rng, c: _Cycle) -> list:  # between the rider and the front wheel
    return [P.box(c.crank_x + 0.25, c.front_x - c.wheel_r - 0.05, -c.width / 2 + 0.05, c.width / 2 - 0.05,
                  0.25, 0.75)]


# Bicycle sub-types: (what rides or is carried, tube radius in metres or 0 for a drawn one).
_BICYCLES: dict[str, tuple[Callable, float]] = {
    'bicycle': (_no_load, 0.0), 'bicycle with rider': (_cyclist, 0.0), 'mountain bike': (_no_load, 0.035),
    'bicycle with a basket': (_basket, 0.0), 'cargo bicycle': (_cargo_box, 0.0),
}


def build_bicycle(rng, ln, w, h, variant):
    load, tube = _BICYCLES[variant]
    tube = tube or float(rng.uniform(0.018, 0.026))
    r = float(np.clip(0.2 * min(ln, 1.8), 0.28, 0.36))
    x0, x1 = -ln / 2 + r, ln / 2 - r
    seat_z, bar_z = min(0.95, 0.75 * h if load is not _cyclist else 0.95), min(1.05, h)
    crank = [x0 + 0.5 * min(x1 - x0, 1.05), 0, r]
    parts = [P.ring([x0, 0, r], r - 0.02, tube), P.ring([x1, 0, r], r - 0.02, tube),
             P.rod([x0, 0, r], crank, 0.02), P.rod(crank, [crank[0] - 0.1, 0, seat_z], 0.02),
             P.rod([crank[0] - 0.1, 0, seat_z - 0.05], [x1 - 0.1, 0, bar_z - 0.1], 0.02),
             P.rod([x1, 0, r], [x1 - 0.12, 0, bar_z], 0.02),
             P.rod([x1 - 0.12, -w / 2 + 0.03, bar_z], [x1 - 0.12, w / 2 - 0.03, bar_z], 0.02),
             P.box(crank[0] - 0.2, crank[0], -0.08, 0.08, seat_z, seat_z + 0.05)]
    return P.combine(parts + load(rng, _Cycle(crank[0], x1, r, w, seat_z, bar_z, h)))


def _motorcycle_frame(r, x0, x1, w, bar_z):
    return [P.ring([x0, 0, r], r - 0.07, 0.08), P.ring([x1, 0, r], r - 0.07, 0.08),
            P.ellipsoid([0.0, 0, r + 0.2], [0.45 * (x1 - x0) / 2 + 0.2, 0.18, 0.22]),
            P.ellipsoid([0.15, 0, r + 0.45], [0.25, 0.15, 0.12]),
            P.box(-0.55, 0.05, -0.14, 0.14, 0.8, 0.85),
            P.rod([x1, 0, r], [x1 - 0.2, 0, bar_z], 0.04),
            P.rod([x1 - 0.2, -w / 2 + 0.03, bar_z], [x1 - 0.2, w / 2 - 0.03, bar_z], 0.025)]


def _moped_frame(r, x0, x1, w, bar_z):
    """Step-through: small wheels, a low floorboard, a leg shield in front, the engine under the seat."""
    return [P.ring([x0, 0, r], r - 0.05, 0.06), P.ring([x1, 0, r], r - 0.05, 0.06),
            P.box(x0 + r * 0.5, x1 - r, -0.16, 0.16, 0.2, 0.32),
            P.taper(x1 - r - 0.12, x1 - r, -0.2, 0.2, 0.25, bar_z - 0.1, top_x=(x1 - r - 0.2, x1 - r - 0.08)),
            P.ellipsoid([x0 + 0.15, 0, 0.6], [0.45, 0.18, 0.22]),
            P.box(x0 - 0.1, x0 + 0.45, -0.15, 0.15, 0.75, 0.8),
            P.rod([x1, 0, r], [x1 - 0.15, 0, bar_z], 0.035),
            P.rod([x1 - 0.15, -w / 2 + 0.03, bar_z], [x1 - 0.15, w / 2 - 0.03, bar_z], 0.025)]


def _sport_frame(r, x0, x1, w, bar_z):
    """A faired sport bike: the rider's bars sit low behind a fairing that reaches up to them."""
    return [*_motorcycle_frame(r, x0, x1, w, bar_z - 0.1),
            P.ellipsoid([x1 - 0.35, 0, r + 0.45], [0.4, 0.24, 0.32])]


_MOTORCYCLE_FRAMES: dict[str, tuple[Callable, float, float]] = {  # frame, wheel radius / length, bar height
    'motorcycle': (_motorcycle_frame, 0.16, 1.05), 'moped': (_moped_frame, 0.13, 1.0),
    'sport motorcycle': (_sport_frame, 0.16, 1.0),
}


def build_motorcycle(rng, ln, w, h, variant):
    rider = variant.endswith(' with rider')
    frame, wheel, bar_z = _MOTORCYCLE_FRAMES[variant.removesuffix(' with rider')]
    r = float(np.clip(wheel * ln, 0.22, 0.36))
    x0, x1 = -ln / 2 + r, ln / 2 - r
    parts = frame(r, x0, x1, w, bar_z)
    if rider:
        parts += _riding(rng, -0.3, 0.85, x1 - 0.2, bar_z, h, 0.0)
    return P.combine(parts)


class _Body(NamedTuple):
    """Where a drawn person's parts are (metres, box frame): what accessories attach to."""

    hip: float
    shoulder: float
    half_width: float  # torso
    half_depth: float
    lean: float  # forward shift of the head and shoulders
    swing: float  # forward reach of the swinging hand
    top: float  # top of the head


def _walker(rng, h: float, stride: float, lean: float, swing: float):
    """Legs, torso and head of a person of height h in a walking pose; arms come with the accessories."""
    body = _Body(0.52 * h, 0.81 * h, 0.2 * (h / 1.75) + 0.02, 0.12 * (h / 1.75), lean, swing, h)
    return [P.rod([0, -0.09, body.hip], [stride, -0.1, 0.05], 0.065),
            P.rod([0, 0.09, body.hip], [-stride, 0.1, 0.05], 0.065),
            P.ellipsoid([lean / 2, 0, (body.hip + body.shoulder) / 2 + 0.02],
                        [body.half_depth, body.half_width, (body.shoulder - body.hip) / 2 + 0.06]),
            P.ellipsoid([lean + 0.01, 0, h - 0.11], [0.1, 0.085, 0.11])], body


def _hand_free(b: _Body, h: float):
    return [], [b.swing, b.half_width + 0.06, b.hip - 0.05]


def _backpack(b: _Body, h: float):
    return ([P.box(-b.half_depth - 0.18, -b.half_depth + 0.02, -0.15, 0.15, b.hip + 0.1, b.shoulder)],
            _hand_free(b, h)[1])


def _bag(b: _Body, h: float):
    return ([P.box(-0.15, 0.15, b.half_width + 0.06, b.half_width + 0.18, b.hip - 0.45, b.hip - 0.05)],
            [0.0, b.half_width + 0.1, b.hip - 0.1])


def _phone(b: _Body, h: float):  # forearm up to the ear
    hand = [b.lean + 0.12, b.half_width - 0.02, b.shoulder - 0.25]
    return [P.rod(hand, [b.lean + 0.04, 0.1, b.top - 0.12], 0.04)], hand


def _umbrella(b: _Body, h: float):  # the canopy is the top of the box
    hand = [0.25, b.half_width - 0.02, b.hip + 0.2]
    canopy = P.ellipsoid([0.2, 0.05, h - 0.12], [0.5, 0.5, 0.12])
    return [P.rod(hand, [0.2, 0.05, h - 0.1], 0.015), canopy], hand


# Pedestrian sub-types: (what the person carries: (body, box height) -> (parts, right hand), height of the
# person below the top of the box, metres).
_PEDESTRIANS: dict[str, tuple[Callable, float]] = {
    'walking pedestrian': (_hand_free, 0.0), 'standing pedestrian': (_hand_free, 0.0),
    'child': (_hand_free, 0.0),
    'pedestrian with a backpack': (_backpack, 0.0), 'pedestrian carrying a bag': (_bag, 0.0),
    'pedestrian on a phone': (_phone, 0.0), 'pedestrian with an umbrella': (_umbrella, 0.3),
}


def build_pedestrian(rng, ln, w, h, variant):
    accessory, above_head = _PEDESTRIANS[variant]
    stride = 0.0 if variant == 'standing pedestrian' else float(rng.uniform(0.1, 0.35))
    parts, body = _walker(rng, h - above_head, stride, float(rng.uniform(-0.03, 0.08)),
                          float(rng.uniform(0.3, 0.9)) * stride)
    extra, right = accessory(body, h)
    left = [-body.swing, -body.half_width - 0.06, body.hip - 0.05]
    arms = [P.rod([body.lean, s * (body.half_width + 0.03), body.shoulder - 0.03], hand, 0.045)
            for s, hand in ((-1, left), (1, right))]
    return P.combine([*parts, *extra, *arms])


def build_cone(rng, ln, w, h, variant):
    if variant == 'traffic cone':
        return P.combine([P.box(-ln / 2, ln / 2, -w / 2, w / 2, 0, 0.04),
                          P.cone([0, 0, 0.04], 0.42 * min(ln, w), h - 0.04)])
    if variant == 'delineator post':
        return P.combine([P.cylinder_z([0, 0], 0.45 * min(ln, w), 0, 0.06),
                          P.cylinder_z([0, 0], 0.12 * min(ln, w) + 0.03, 0.06, h)])
    return P.cylinder_z([0, 0], 0.48 * min(ln, w), 0, h)  # traffic drum


def _jersey(rng, ln, w, h):
    return [P.taper(-ln / 2, ln / 2, -w / 2, w / 2, 0, 0.3 * h, top_x=(-0.3 * ln, 0.3 * ln)),
            P.taper(-0.3 * ln, 0.3 * ln, -w / 2, w / 2, 0.3 * h, h, top_x=(-0.15 * ln, 0.15 * ln))]


def _water_filled(rng, ln, w, h):
    return [P.taper(-ln / 2, ln / 2, -w / 2, w / 2, 0, 0.55 * h, top_x=(-0.3 * ln, 0.3 * ln)),
            P.taper(-0.3 * ln, 0.3 * ln, -w / 2 + 0.1, w / 2 - 0.1, 0.55 * h, h, top_x=(-0.2 * ln, 0.2 * ln))]


def _fence(ln, w, h, bars: int, foot_h: float, foot_len: float):
    """Posts on feet, top and bottom rails, vertical bars (crowd-control and construction fences)."""
    posts = (-w / 2 + 0.04, w / 2 - 0.04)
    parts = [P.box(-foot_len / 2, foot_len / 2, y - 0.12, y + 0.12, 0, foot_h) for y in posts]
    parts += [P.rod([0, y, foot_h - 0.01], [0, y, h], 0.025) for y in posts]
    parts += [P.rod([0, -w / 2, z], [0, w / 2, z], 0.02) for z in (0.2 * h, h - 0.03)]
    parts += [P.rod([0, y, 0.2 * h], [0, y, h - 0.03], 0.01)
              for y in np.linspace(-w / 2 + 0.15, w / 2 - 0.15, bars)]
    return parts


def _metal_fence(rng, ln, w, h):
    return _fence(ln, w, h, 9, 0.06, ln)


def _construction_fence(rng, ln, w, h):  # tall mesh panel on concrete feet
    return _fence(ln, w, h, int(rng.integers(14, 22)), 0.15, ln)


def _barricade(rng, ln, w, h):
    """A-frame barricade: two splayed leg pairs and two or three striped boards across the road."""
    parts = [P.rod([s * ln / 2, y, 0], [0, y, h - 0.05], 0.025)
             for s in (-1, 1) for y in (-w / 2 + 0.1, w / 2 - 0.1)]
    boards = int(rng.integers(2, 4))
    parts += [P.box(-0.02 - 0.06 * (i % 2), 0.02, -w / 2, w / 2, z - 0.2 * h / boards, z)
              for i, z in enumerate(np.linspace(h, 0.45 * h, boards))]
    return parts


def _guard_rail(rng, ln, w, h):
    """A W-beam on posts every 1.5-2 m (roadside guard rail segments)."""
    posts = np.arange(-w / 2 + 0.1, w / 2, float(rng.uniform(1.5, 2.0)))
    parts = [P.box(-ln / 2, -ln / 2 + 0.15, y - 0.08, y + 0.08, 0, h - 0.05) for y in posts]
    parts += [P.box(-ln / 2 + 0.15, ln / 2, -w / 2, w / 2, 0.55 * h, h)]
    return parts


_BARRIERS: dict[str, Callable] = {
    'concrete jersey barrier': _jersey, 'plastic water-filled barrier': _water_filled,
    'metal fence barrier': _metal_fence, 'construction fence panel': _construction_fence,
    'striped barricade': _barricade, 'guard rail': _guard_rail,
}


def build_barrier(rng, ln, w, h, variant):
    # Long side along y: nuScenes barriers are annotated with the heading across the barrier.
    return P.combine(_BARRIERS[variant](rng, ln, w, h))


def build_kick_scooter(rng, ln, w, h, variant):
    r = 0.1
    parts = [P.box(-0.38 * ln, 0.3 * ln, -0.08, 0.08, 0.08, 0.13),
             P.ring([-ln / 2 + r, 0, r], r - 0.02, 0.025), P.ring([ln / 2 - r, 0, r], r - 0.02, 0.025),
             P.rod([ln / 2 - r, 0, r], [ln / 2 - r - 0.08, 0, h], 0.02),
             P.rod([ln / 2 - r - 0.08, -w / 2, h - 0.02], [ln / 2 - r - 0.08, w / 2, h - 0.02], 0.02)]
    if variant == 'electric kick scooter':
        parts.append(P.box(0.2 * ln, 0.3 * ln, -0.06, 0.06, 0.13, 0.45))
    return P.combine(parts)


def build_stroller(rng, ln, w, h, variant):
    r = 0.1
    parts = [P.wheel([x, s * (w / 2 - 0.03), r], r, 0.05)
             for x in (-ln / 2 + 0.15, ln / 2 - r) for s in (-1, 1)]
    parts.append(P.box(-0.3 * ln, 0.4 * ln, -w / 2 + 0.06, w / 2 - 0.06, 0.35, 0.65))
    parts.append(P.ellipsoid([-0.05 * ln, 0, 0.72], [0.3 * ln, w / 2 - 0.07, 0.25]))
    parts += [P.rod([-0.2 * ln, s * (w / 2 - 0.06), 0.4], [-ln / 2, s * (w / 2 - 0.06), h], 0.015)
              for s in (-1, 1)]
    parts.append(P.rod([-ln / 2, -w / 2 + 0.06, h - 0.01], [-ln / 2, w / 2 - 0.06, h - 0.01], 0.015))
    return P.combine(parts)


def build_dog(rng, ln, w, h, variant):
    leg = 0.5 * h
    bl = 0.6 * ln
    parts = [P.ellipsoid([0, 0, leg + 0.2 * h], [bl / 2, w / 2 - 0.02, 0.2 * h]),
             P.ellipsoid([ln / 2 - 0.12 * ln, 0, h - 0.12 * h], [0.12 * ln, 0.6 * w / 2, 0.12 * h]),
             P.rod([bl / 2 - 0.05, 0, leg + 0.25 * h], [ln / 2 - 0.15 * ln, 0, h - 0.2 * h], 0.04),
             P.rod([-bl / 2, 0, leg + 0.25 * h], [-ln / 2, 0, leg + 0.4 * h], 0.02)]
    for x in (-bl / 2 + 0.06, bl / 2 - 0.06):
        for s in (-1, 1):
            parts.append(P.rod([x, s * 0.3 * w, leg + 0.1 * h], [x + 0.03, s * 0.3 * w, 0.02], 0.03))
    return P.combine(parts)


def build_bench(rng, ln, w, h, variant):
    seat = 0.45
    parts = [P.box(-ln / 2, ln / 2, -w / 2, w / 2 - 0.05 * (variant == 'park bench'), seat - 0.05, seat)]
    parts += [P.box(x - 0.04, x + 0.04, -w / 2 + 0.05, w / 2 - 0.05, 0, seat - 0.05)
              for x in (-ln / 2 + 0.15, ln / 2 - 0.15)]
    if variant == 'park bench':
        parts.append(P.box(-ln / 2, ln / 2, -w / 2, -w / 2 + 0.05, seat, h))
    return P.combine(parts)


def build_sign(rng, ln, w, h, variant):
    plate = float(np.clip(w, 0.4, 1.0))
    top = h
    pole = [P.cylinder_z([-ln / 2 + 0.05, 0], 0.04, 0, top - 0.2)]
    if variant == 'round traffic sign':
        t = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
        t[:3, 3] = [ln / 2 - 0.02, 0, top - plate / 2]
        face = trimesh.creation.cylinder(radius=plate / 2, height=0.03, sections=20, transform=t)
    elif variant == 'triangular warning sign':
        face = P.hexahedron([[ln / 2 - 0.04, -plate / 2, top - plate], [ln / 2, -plate / 2, top - plate],
                             [ln / 2, plate / 2, top - plate], [ln / 2 - 0.04, plate / 2, top - plate],
                             [ln / 2 - 0.04, 0, top], [ln / 2, 0, top], [ln / 2, 0, top],
                             [ln / 2 - 0.04, 0, top]])
    else:
        face = P.box(ln / 2 - 0.04, ln / 2, -plate / 2, plate / 2, top - 0.8 * plate, top)
    return P.combine([*pole, face])


def build_bin(rng, ln, w, h, variant):
    if variant == 'round trash can':
        return P.combine([P.cylinder_z([0, 0], min(ln, w) / 2, 0, h - 0.05),
                          P.cylinder_z([0, 0], min(ln, w) / 2 - 0.03, h - 0.05, h)])
    parts = [P.taper(-ln / 2 + 0.05, ln / 2, -w / 2 + 0.03, w / 2 - 0.03, 0.08, h - 0.06,
                     top_x=(-ln / 2, ln / 2), top_y=(-w / 2, w / 2)),
             P.box(-ln / 2, ln / 2, -w / 2, w / 2, h - 0.06, h)]
    parts += [P.wheel([-ln / 2 + 0.1, s * (w / 2 - 0.08), 0.08], 0.08, 0.06) for s in (-1, 1)]
    return P.combine(parts)


def _v(*names_weights):
    return tuple(Variant(n, w) if not isinstance(n, Variant) else n for n, w in names_weights)


# Size statistics: nuScenes means (l, w, h) as used by common detectors' anchors, spreads from the
# class's variety; non-nuScenes classes from typical real-world dimensions.
CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec('car', 'car', (4.63, 1.97, 1.74), (0.45, 0.15, 0.22),
              (Variant('sedan', 3), Variant('hatchback', 2),
               Variant('SUV', 2, (4.75, 1.95, 1.8), (0.35, 0.1, 0.12)),
               Variant('van', 1, (5.0, 2.0, 2.05), (0.45, 0.1, 0.2)), Variant('station wagon', 1),
               Variant('minivan', 1, (4.95, 1.95, 1.78), (0.25, 0.08, 0.08)),
               Variant('compact car', 1, (3.75, 1.72, 1.52), (0.25, 0.08, 0.08)),
               Variant('coupe', 0.5, (4.5, 1.85, 1.35), (0.3, 0.08, 0.06))), build_car),
    ClassSpec('truck', 'truck', (6.94, 2.52, 2.85), (1.8, 0.3, 0.5),
              (Variant('box truck', 2), Variant('pickup truck', 1.5, (5.5, 2.05, 1.9), (0.4, 0.12, 0.12)),
               Variant('dump truck', 1), Variant('flatbed truck', 1),
               Variant('cement mixer truck', 0.7, (8.5, 2.5, 3.7), (0.8, 0.1, 0.2)),
               Variant('semi-tractor', 1, (6.2, 2.5, 3.6), (0.6, 0.1, 0.3)),
               Variant('garbage truck', 0.7, (8.5, 2.5, 3.4), (0.8, 0.1, 0.2))), build_truck),
    ClassSpec('trailer', 'trailer', (12.3, 2.9, 3.87), (2.5, 0.2, 0.5),
              _v(('box trailer', 2), ('flatbed trailer', 1), ('tank trailer', 1)), build_trailer),
    ClassSpec('bus', 'bus', (11.1, 2.95, 3.47), (1.4, 0.12, 0.3),
              (Variant('city bus', 3), Variant('coach bus', 1),
               Variant('articulated bus', 1, (17.5, 2.55, 3.2), (1.0, 0.1, 0.2)),
               Variant('double-decker bus', 0.7, (11.0, 2.55, 4.3), (0.8, 0.08, 0.15)),
               Variant('minibus', 0.7, (7.2, 2.25, 2.8), (0.7, 0.1, 0.15)),
               Variant('school bus', 0.5, (11.5, 2.5, 3.2), (1.0, 0.08, 0.12))), build_bus),
    ClassSpec('construction vehicle', 'construction_vehicle', (6.37, 2.85, 3.19), (1.5, 0.4, 0.6),
              (Variant('excavator', 2), Variant('wheel loader', 1.5), Variant('road roller', 1),
               Variant('bulldozer', 1, (5.5, 3.2, 3.2), (0.8, 0.3, 0.3)),
               Variant('mobile crane', 1, (11.5, 2.8, 3.9), (1.5, 0.15, 0.2)),
               Variant('backhoe loader', 1, (6.5, 2.4, 3.6), (0.5, 0.15, 0.2))), build_construction),
    ClassSpec('bicycle', 'bicycle', (1.7, 0.6, 1.1), (0.12, 0.08, 0.08),
              (Variant('bicycle', 1.5),
               Variant('bicycle with rider', 1.2, (1.75, 0.7, 1.72), (0.12, 0.08, 0.1)),
               Variant('mountain bike', 0.5), Variant('bicycle with a basket', 0.4),
               Variant('cargo bicycle', 0.3, (2.4, 0.75, 1.1), (0.2, 0.06, 0.06))),
              build_bicycle, tight=False),
    ClassSpec('motorcycle', 'motorcycle', (2.11, 0.77, 1.3), (0.2, 0.1, 0.1),
              (Variant('motorcycle', 1.5),
               Variant('motorcycle with rider', 1, (2.15, 0.85, 1.62), (0.2, 0.1, 0.1)),
               Variant('moped', 0.7, (1.8, 0.7, 1.15), (0.12, 0.06, 0.06)),
               Variant('moped with rider', 0.5, (1.85, 0.75, 1.6), (0.12, 0.06, 0.08)),
               Variant('sport motorcycle', 0.5, (2.05, 0.75, 1.15), (0.12, 0.06, 0.06))),
              build_motorcycle, tight=False),
    ClassSpec('pedestrian', 'pedestrian', (0.73, 0.67, 1.77), (0.12, 0.1, 0.12),
              (Variant('walking pedestrian', 3), Variant('standing pedestrian', 1),
               Variant('pedestrian with a backpack', 1),
               Variant('child', 0.5, (0.55, 0.5, 1.25), (0.08, 0.08, 0.12)),
               Variant('pedestrian carrying a bag', 0.7), Variant('pedestrian on a phone', 0.5),
               Variant('pedestrian with an umbrella', 0.3, (1.0, 1.0, 2.05), (0.1, 0.1, 0.1))),
              build_pedestrian, tight=False),
    ClassSpec('traffic cone', 'traffic_cone', (0.41, 0.41, 0.85), (0.07, 0.07, 0.15),
              _v(('traffic cone', 4), ('delineator post', 1), ('traffic drum', 1)), build_cone),
    ClassSpec('barrier', 'barrier', (0.62, 2.1, 1.02), (0.12, 0.45, 0.12),
              (Variant('concrete jersey barrier', 2), Variant('plastic water-filled barrier', 2),
               Variant('metal fence barrier', 1),
               Variant('construction fence panel', 0.7, (0.7, 3.4, 2.0), (0.1, 0.3, 0.1)),
               Variant('striped barricade', 0.7, (0.7, 1.6, 1.05), (0.1, 0.2, 0.08)),
               Variant('guard rail', 0.5, (0.45, 4.0, 0.8), (0.05, 0.6, 0.05))), build_barrier),
    ClassSpec('kick scooter', '', (1.1, 0.45, 1.12), (0.1, 0.06, 0.08),
              _v(('kick scooter', 1), ('electric kick scooter', 1)), build_kick_scooter, tight=False),
    ClassSpec('stroller', '', (0.95, 0.6, 1.05), (0.1, 0.05, 0.08), _v(('baby stroller', 1)), build_stroller),
    ClassSpec('dog', '', (0.85, 0.3, 0.62), (0.18, 0.05, 0.12), _v(('dog', 1)), build_dog, tight=False),
    ClassSpec('bench', '', (1.8, 0.6, 0.85), (0.3, 0.08, 0.08),
              (Variant('park bench', 2), Variant('backless bench', 1, (1.8, 0.5, 0.47), (0.3, 0.08, 0.04))),
              build_bench),
    ClassSpec('traffic sign', '', (0.12, 0.7, 2.5), (0.03, 0.15, 0.3),
              _v(('rectangular traffic sign', 1), ('round traffic sign', 1), ('triangular warning sign', 1)),
              build_sign),
    ClassSpec('trash can', '', (0.65, 0.6, 1.0), (0.1, 0.08, 0.1),
              _v(('wheelie bin', 1), ('round trash can', 1)), build_bin),
)

NUSCENES_CLASSES = tuple(c.name for c in CLASSES if c.coarse)


def class_names() -> tuple[str, ...]:
    return tuple(c.name for c in CLASSES)


def get_class(name: str) -> ClassSpec:
    for c in CLASSES:
        if name in (c.name, c.coarse):
            return c
    raise KeyError(f'unknown class {name!r}; known: {", ".join(class_names())}')


def draw_size(spec: ClassSpec, variant: Variant, rng: np.random.Generator) -> np.ndarray:
    mean = np.asarray(variant.size_mean or spec.size_mean)
    std = np.asarray(variant.size_std or spec.size_std)
    size = mean + std * np.clip(rng.standard_normal(3), -2.0, 2.0)
    return np.maximum(size, 0.3 * mean)


def fit_to_box(mesh: trimesh.Trimesh, size_lwh: np.ndarray, tight: bool) -> trimesh.Trimesh:
    """Put the mesh into its box (centred, standing on the bottom face).

    Tight classes are scaled to the box exactly; loose ones (people, cycles) are only shrunk where a
    builder overshoots, since nuScenes boxes around people are wider than the body.
    """
    lo, hi = mesh.bounds
    extent = np.maximum(hi - lo, 1e-6)
    scale = size_lwh / extent if tight else np.minimum(1.0, size_lwh / extent)
    scale[2] = size_lwh[2] / extent[2]
    mesh = mesh.copy()
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    mesh.vertices = (mesh.vertices - centre) * scale - np.array([0, 0, size_lwh[2] / 2])
    return mesh


def make_object(spec: ClassSpec | str, rng: np.random.Generator) -> GeneratedObject:
    """Draw a variant and a size, build the mesh in the box frame."""
    spec = get_class(spec) if isinstance(spec, str) else spec
    weights = np.array([v.weight for v in spec.variants], dtype=np.float64)
    return build_variant(spec, spec.variants[int(rng.choice(len(weights), p=weights / weights.sum()))], rng)


def build_variant(spec: ClassSpec, variant: Variant, rng: np.random.Generator) -> GeneratedObject:
    """One object of a given variant: a drawn size, the mesh in the box frame."""
    size = draw_size(spec, variant, rng)
    mesh = fit_to_box(spec.builder(rng, *map(float, size), variant.name), size, spec.tight)
    return GeneratedObject(spec, variant.name, size, mesh)


def sample_surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> np.ndarray:
    """n area-weighted uniform samples on the surface (the dense 'synthetic CAD' domain), float32 (n, 3)."""
    tris = mesh.triangles
    area = np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1) / 2
    face = rng.choice(len(tris), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tris[face]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return pts.astype(np.float32)
