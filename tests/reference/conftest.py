"""The method's reference code (../shared/upstream/blendclip, a ULIP fork), imported as it is.

It needs packages that have no wheels here (pytorch3d, knn_cuda, numba, h5py, easydict) and modules
of the ULIP repository that the snapshot leaves out (utils.*, models.pointbert.{misc,logger,checkpoint}).
The `reference` fixture puts the folder on sys.path, registers its `models` and `data` packages by
path (our repository has folders of those names too), gives the missing modules the pure-torch
stand-ins below, imports the reference modules and undoes all of it when the session ends.
The stand-ins replace only the reference's dependencies, never our code: the FPS stand-in calls our
FPS so both encoders group around the same centres (pytorch3d's would start at a random point).
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from blendclip_core.encoder import get_config
from blendclip_core.encoder.grouping import farthest_point_sample

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / 'shared' / 'upstream' / 'blendclip'
FPS_START = get_config('pointbert-s').fps_start  # where our encoder's FPS starts
KnnResult = collections.namedtuple('KnnResult', 'dists idx knn')


# ------------------------------------------------------------------------------ pytorch3d.ops stand-in

def sample_farthest_points(points: torch.Tensor, lengths: torch.Tensor | None = None, K=50,
                           random_start_point: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """pytorch3d's padded FPS (indices padded with -1, points with 0) computed by OUR FPS."""
    b, n, _ = points.shape
    lengths = torch.full((b,), n, dtype=torch.long) if lengths is None else lengths.long()
    k = torch.as_tensor(K, dtype=torch.long).expand(b).clone()
    offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    valid = torch.arange(n)[None, :] < lengths[:, None]
    k_max = int(k.max())
    idx = farthest_point_sample(points[valid].contiguous(), offsets, k, k_max, n, FPS_START, 'torch')
    pad = torch.arange(k_max)[None, :] >= k[:, None]
    local = (idx - offsets[:-1, None]).masked_fill(pad, -1)
    centres = torch.gather(points, 1, local.clamp(min=0)[..., None].expand(-1, -1, points.shape[2]))
    return centres.masked_fill(pad[..., None], 0.0), local


def knn_points(p1: torch.Tensor, p2: torch.Tensor, lengths1=None, lengths2=None, K: int = 1,
               return_nn: bool = False, return_sorted: bool = True, **_: object) -> KnnResult:
    """pytorch3d's kNN: the K nearest of the first lengths2[b] points for the first lengths1[b]
    queries; rows past lengths1 and slots past lengths2 stay 0 (index 0), as in pytorch3d."""
    b, n1, _ = p1.shape
    lengths1 = torch.full((b,), n1) if lengths1 is None else lengths1
    lengths2 = torch.full((b,), p2.shape[1]) if lengths2 is None else lengths2
    dists = p1.new_zeros(b, n1, K)
    idx = torch.zeros(b, n1, K, dtype=torch.long)
    for i in range(b):  # one cloud at a time keeps the (n1, n2) distance matrix small
        q, m = int(lengths1[i]), int(lengths2[i])
        d = ((p1[i, :q, None, :] - p2[i, None, :m, :]) ** 2).sum(-1)
        v, j = d.topk(min(K, m), dim=-1, largest=False, sorted=True)
        dists[i, :q, :v.shape[1]], idx[i, :q, :j.shape[1]] = v, j
    return KnnResult(dists, idx, None)


def knn_gather(x: torch.Tensor, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """pytorch3d's knn_gather: x (B, M, U) at idx (B, L, K); slots k >= lengths[b] are zeroed."""
    b, m, u = x.shape
    k = idx.shape[2]
    lengths = torch.full((b,), m) if lengths is None else lengths
    out = x[:, :, None].expand(-1, -1, k, -1).gather(1, idx[..., None].expand(-1, -1, -1, u))
    mask = lengths[:, None] <= torch.arange(k)[None, :]  # (B, K)
    return out.masked_fill(mask[:, None, :, None], 0.0)


# ------------------------------------------------------------------------------ other stand-ins

class KnnCuda:
    """knn_cuda.KNN: (dist, idx) of the k nearest reference points of each query (DGCNN only)."""

    def __init__(self, k: int, transpose_mode: bool = False) -> None:
        self.k, self.transpose_mode = k, transpose_mode

    def __call__(self, ref: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.transpose_mode:
            ref, query = ref.transpose(1, 2), query.transpose(1, 2)
        dist, idx = torch.cdist(query, ref).topk(self.k, dim=-1, largest=False)
        return (dist, idx) if self.transpose_mode else (dist.transpose(1, 2), idx.transpose(1, 2))


def _misc_fps(xyz: torch.Tensor, number: int) -> torch.Tensor:
    """models.pointbert.misc.fps (used by the reference's fixed-size Group): centres by our FPS."""
    centres, _ = sample_farthest_points(xyz, K=number)
    return centres


class EasyDict(dict):
    """easydict.EasyDict: a dict whose keys are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


def _jit(*args, **kwargs):
    """numba.jit: the function itself, run by Python with the same semantics (slower)."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


class _Registry:
    def register_module(self, *_, **__):
        return lambda cls: cls


def _no_files(*_, **__):
    raise RuntimeError('the reference test stand-ins read no dataset files')


def _stand_ins() -> dict[str, dict[str, object]]:
    """module name -> attributes, for the reference's dependencies that this machine lacks."""
    quiet = {'print_log': lambda *a, **k: None}
    mods = {
        'pytorch3d': {}, 'pytorch3d.ops': {'sample_farthest_points': sample_farthest_points,
                                           'knn_points': knn_points, 'knn_gather': knn_gather},
        'knn_cuda': {'KNN': KnnCuda}, 'numba': {'jit': _jit}, 'h5py': {}, 'easydict': {'EasyDict': EasyDict},
    }
    mods = {k: v for k, v in mods.items() if importlib.util.find_spec(k.split('.')[0]) is None}
    # Modules of the ULIP repository that the snapshot does not include: always stand-ins.
    mods.update({
        'utils': {}, 'utils.io': {'IO': types.SimpleNamespace(get=_no_files)},
        'utils.build': {'DATASETS': _Registry(), 'build_dataset_from_cfg': _no_files},
        'utils.logger': dict(quiet), 'utils.utils': {'get_rank': lambda: 0, 'all_gather_batch': list},
        'models.pointbert.misc': {'fps': _misc_fps}, 'models.pointbert.logger': dict(quiet),
        'models.pointbert.checkpoint': {'get_missing_parameters_message': str,
                                        'get_unexpected_parameters_message': str},
    })
    return mods


def _install(root: Path) -> None:
    for name, path in (('models', root / 'models'), ('models.pointbert', root / 'models' / 'pointbert'),
                       ('data', root / 'data')):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(path)]
        sys.modules[name] = pkg
    for name, attrs in _stand_ins().items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        if name in ('pytorch3d', 'utils'):
            mod.__path__ = []
        sys.modules[name] = mod
    for name in list(sys.modules):  # make submodules attributes of their packages
        parent, _, child = name.rpartition('.')
        if parent in ('pytorch3d', 'utils', 'models', 'models.pointbert') and parent in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])


_TOP = ('models', 'data', 'utils', 'pytorch3d', 'knn_cuda', 'numba', 'h5py', 'easydict')


@pytest.fixture(scope='session')
def reference() -> Iterator[types.SimpleNamespace]:
    """The reference modules: point_encoder, dataset_3d, losses, ULIP_models (see the module doc)."""
    if not REFERENCE.is_dir():
        pytest.skip(f'reference code not found at {REFERENCE} (../shared is absent): nothing to compare')
    saved_modules = {k: v for k, v in sys.modules.items() if k.split('.')[0] in _TOP}
    saved_path = list(sys.path)
    sys.path.insert(0, str(REFERENCE))
    try:
        _install(REFERENCE)
        with warnings.catch_warnings():  # timm.models.layers is deprecated (the reference imports it)
            warnings.simplefilter('ignore', FutureWarning)
            ns = types.SimpleNamespace(root=REFERENCE, **{
                n.rpartition('.')[2]: importlib.import_module(n)
                for n in ('models.pointbert.point_encoder', 'data.dataset_3d', 'models.losses',
                          'models.ULIP_models')})
        yield ns
    finally:
        sys.path[:] = saved_path
        for k in [k for k in sys.modules if k.split('.')[0] in _TOP]:
            del sys.modules[k]
        sys.modules.update(saved_modules)


@pytest.fixture(autouse=True)
def _few_threads() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 cores shared by everything
    yield
    torch.set_num_threads(old)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261205)
