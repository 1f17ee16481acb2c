"""The synthetic side: CAD triplet folders (ULIP-2 / Objaverse style, OpenShape style) and a mesh sampler.

All three are random-access Sequences of `Triplet(domain='synthetic')`, usable directly as training
sources. Points are z-up xyz (float32, (N, 3)); y-up layouts are turned by (x, y, z) -> (x, -z, y).
`open_cad(root, layout, embeddings=spec)` opens any of them (CAD_LAYOUTS) with the text / image embeddings
`embed_cad` (blendclip-embed --cad) stored for a text space in <root>/embeddings/<safe spec>/
(blendclip_core.mining.embed), the trainer's `cad` source.

ULIP-2 / Objaverse-style folder (`UlipTripletFolder`), the layout accepted:
  <root>/<uid>.npy | <uid>.npz | <uid>/<uid>_<n>.npz   one object's points, (N, >=3) float, xyz first;
        an .npz holds them under 'xyz', 'points', 'pc' or 'arr_0' (the first present)
  <root>/captions.json      {uid: caption or [captions]}               (optional)
  <root>/labels.json        {uid: category}                            (optional)
  <root>/embeddings.npz     'uids' (M,) str, 'text' (M, D), 'image' (M, D) CLIP embeddings (optional;
        rows are L2-normalised on reading; an all-zero image row means no image)
  <uid>.png | .jpg | .jpeg  a rendered view, beside the object's points file (optional; Triplet.image)
  Objects without points are skipped at indexing; a uid without caption gets 'a 3D model of a <label>'.

OpenShape-style folder (`OpenShapeFolder`), the layout of OpenShape's released training data:
  <root>/<split>.json  [{'id', 'data_path' (absolute or relative to root), 'dataset', 'group',
        'category' (optional)}, ...]; without a split file every <root>/**/*.npy is an object
  each .npy is a pickled dict (np.load(..., allow_pickle=True).item(), so only read files you trust):
    'xyz' (N, 3) y-up, 'rgb' (N, 3), 'text' [str], 'text_feat' [{'original': (D,), 'prompt_avg': (D,)}],
    'blip_caption' str, 'blip_caption_feat' {...}, 'msft_caption' str, 'msft_caption_feat' {...},
    'image_feat' (K, D), 'thumbnail_feat' (D,) (Objaverse only)
  caption = the first available of text, blip_caption, msft_caption; text embedding = normalised mean of
  their features (the method's "mean over its captions"); image embedding = thumbnail_feat, else the mean
  of image_feat rows, normalised.

Meshes (`MeshSampler`): .glb/.gltf/.ply/.stl/.obj/.off files (trimesh) -> `points` dense surface samples,
area-weighted, seeded per object; glTF is y-up by its specification, other formats are taken as z-up
unless `up_axis` says otherwise; caption 'a 3D model of a <name>' (name from `labels` or the file name);
a rendered view <stem>.png | .jpg | .jpeg beside the mesh file becomes Triplet.image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.data.triplet import SYNTHETIC, Triplet
from blendclip_core.mining.embed import (
    EMBEDDINGS_DIR,
    TripletsWithEmbeddings,
    embed_triplets,
    embeddings_dir,
)

logger = logging.getLogger(__name__)

NPZ_POINT_KEYS = ('xyz', 'points', 'pc', 'arr_0')
MESH_SUFFIXES = ('.glb', '.gltf', '.ply', '.stl', '.obj', '.off')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')  # rendered views beside an object's file


class CadLayoutError(ValueError):
    """A folder or file that does not follow the documented layout."""


def y_up_to_z_up(xyz: np.ndarray) -> np.ndarray:
    """(x, y, z) y-up -> (x, -z, y): a proper rotation (+90 deg about x), so handedness is kept."""
    return np.stack([xyz[:, 0], -xyz[:, 2], xyz[:, 1]], axis=1)


def _normalised(v) -> np.ndarray | None:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 and np.isfinite(n) else None


def _template(name: str) -> str:
    words = name.strip() or 'object'
    return f"a 3D model of {'an' if words[0] in 'aeiou' else 'a'} {words}"


def _rendered_image(folder: Path, name: str) -> bytes | None:
    """The encoded bytes of <folder>/<name>.png | .jpg | .jpeg (the first present), else None."""
    path = next((folder / (name + s) for s in IMAGE_SUFFIXES if (folder / (name + s)).is_file()), None)
    return None if path is None else path.read_bytes()


def _words_of(stem: str) -> str:
    """'CesiumMilkTruck' -> 'cesium milk truck', 'traffic_cone-2' -> 'traffic cone'."""
    spaced = re.sub(r'(?<=[a-z])(?=[A-Z])', ' ', stem)
    return ' '.join(w for w in re.split(r'[\s_\-]+', spaced.lower()) if w and not w.isdigit())


class UlipTripletFolder(Sequence):
    """ULIP-2 / Objaverse-style folder (layout in the module docstring)."""

    def __init__(self, root: str | Path, y_up: bool = False, max_points: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CadLayoutError(f'ULIP-style folder {self.root} does not exist')
        self.y_up, self.max_points = y_up, max_points
        files: dict[str, Path] = {}
        for path in sorted(self.root.rglob('*')):
            if path.relative_to(self.root).parts[0] == EMBEDDINGS_DIR:  # blendclip-embed's output
                continue
            if path.suffix in ('.npy', '.npz') and path.name != 'embeddings.npz':
                uid = path.parent.name if path.parent != self.root else path.stem
                files.setdefault(uid, path)
        self.uids = sorted(files)
        self.keys = self.uids
        self.files = files
        self.captions = self._json('captions.json')
        self.label_of = self._json('labels.json')
        self.text, self.image, self.row = None, None, {}
        emb = self.root / 'embeddings.npz'
        if emb.is_file():
            with np.load(emb) as z:
                self.row = {str(u): i for i, u in enumerate(z['uids'])}
                self.text = z['text'] if 'text' in z else None
                self.image = z['image'] if 'image' in z else None
        self.labels = [self.label_of.get(u, '') for u in self.uids]

    def _json(self, name: str) -> dict:
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else {}

    def __len__(self) -> int:
        return len(self.uids)

    def _points(self, path: Path) -> np.ndarray:
        if path.suffix == '.npy':
            pts = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                key = next((k for k in NPZ_POINT_KEYS if k in z), None)
                if key is None:
                    raise CadLayoutError(f'{path}: no points under any of {NPZ_POINT_KEYS}')
                pts = z[key]
        pts = np.asarray(pts, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] < 3:
            raise CadLayoutError(f'{path}: points must be (N, >=3), got {pts.shape}')
        xyz = pts[:, :3]
        return y_up_to_z_up(xyz) if self.y_up else xyz

    def __getitem__(self, i: int) -> Triplet:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        uid = self.uids[i]
        pts = self._points(self.files[uid])
        if self.max_points and len(pts) > self.max_points:
            pick = np.random.default_rng(int(hashlib.md5(uid.encode()).hexdigest()[:8], 16))
            pts = pts[np.sort(pick.choice(len(pts), self.max_points, replace=False))]
        caps = self.captions.get(uid, [])
        caps = [caps] if isinstance(caps, str) else list(caps)
        label = self.label_of.get(uid, '')
        row = self.row.get(uid)
        text = _normalised(self.text[row]) if row is not None and self.text is not None else None
        image = _normalised(self.image[row]) if row is not None and self.image is not None else None
        return Triplet(key=uid, points=pts, caption=caps[0] if caps else _template(label or 'object'),
                       label=label, label_coarse='', domain=SYNTHETIC,
                       image=_rendered_image(self.files[uid].parent, uid), text_embedding=text,
                       image_embedding=image, meta={'source': 'ulip', 'file': str(self.files[uid]),
                                                    'captions': caps})


class OpenShapeFolder(Sequence):
    """OpenShape-style folder of pickled .npy dicts (layout in the module docstring)."""

    TEXT_KEYS = (('text', 'text_feat'), ('blip_caption', 'blip_caption_feat'),
                 ('msft_caption', 'msft_caption_feat'))

    def __init__(self, root: str | Path, split: str | None = None, y_up: bool = True,
                 embed_version: str = 'original'):
        self.root = Path(root)
        if not self.root.is_dir():
            raise CadLayoutError(f'OpenShape-style folder {self.root} does not exist')
        self.y_up, self.embed_version = y_up, embed_version
        if split is not None:
            path = self.root / split if not Path(split).is_absolute() else Path(split)
            if not path.is_file():
                raise CadLayoutError(f'OpenShape split file {path} does not exist')
            self.items = [dict(e) for e in json.loads(path.read_text())]
            for e in self.items:
                if 'id' not in e or 'data_path' not in e:
                    raise CadLayoutError(f'{path}: every entry needs id and data_path, got {sorted(e)}')
        else:
            self.items = [{'id': p.stem, 'data_path': str(p)} for p in sorted(self.root.rglob('*.npy'))]
        self.labels = [e.get('category', '') for e in self.items]
        self.keys = [str(e['id']) for e in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _feat(self, feat) -> np.ndarray | None:
        if isinstance(feat, dict):
            feat = feat.get(self.embed_version, feat.get('original'))
        return None if feat is None else _normalised(feat)

    def __getitem__(self, i: int) -> Triplet:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        item = self.items[i]
        path = Path(item['data_path'])
        path = path if path.is_absolute() else self.root / path
        try:
            data = np.load(path, allow_pickle=True).item()
        except (OSError, ValueError) as exc:
            raise CadLayoutError(f'{path}: not an OpenShape .npy dict ({exc})') from exc
        if 'xyz' not in data:
            raise CadLayoutError(f'{path}: no xyz')
        xyz = np.asarray(data['xyz'], np.float32)[:, :3]
        xyz = y_up_to_z_up(xyz) if self.y_up else xyz
        texts, feats = [], []
        for text_key, feat_key in self.TEXT_KEYS:
            value = data.get(text_key)
            if not value:
                continue
            text, feat = (value[0], data.get(feat_key, [None])[0]) if isinstance(value, list) else (
                value, data.get(feat_key))
            texts.append(str(text))
            f = self._feat(feat)
            if f is not None:
                feats.append(f)
        text_emb = _normalised(np.mean(feats, axis=0)) if feats else None
        image_emb = None
        if data.get('thumbnail_feat') is not None:
            image_emb = _normalised(data['thumbnail_feat'])
        elif data.get('image_feat') is not None and len(data['image_feat']):
            feats_img = np.asarray(data['image_feat'], np.float32)
            image_emb = _normalised(feats_img.reshape(len(feats_img), -1).mean(0))
        label = item.get('category', '')
        caption = texts[0] if texts else _template(label or 'object')
        return Triplet(key=str(item['id']), points=xyz, caption=caption,
                       label=label, label_coarse='', domain=SYNTHETIC, text_embedding=text_emb,
                       image_embedding=image_emb,
                       meta={'source': 'openshape', 'file': str(path), 'captions': texts,
                             'dataset': item.get('dataset', ''), 'group': item.get('group', '')})


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` points uniform over the surface (faces drawn by area, then uniform barycentrics)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not np.isfinite(area).all() or area.sum() <= 0:
        raise CadLayoutError('mesh has no surface area')
    rng = np.random.default_rng(seed)
    face = rng.choice(len(tri), size=count, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    t = tri[face]
    pts = (1 - r1)[:, None] * t[:, 0] + (r1 * (1 - r2))[:, None] * t[:, 1] + (r1 * r2)[:, None] * t[:, 2]
    return pts.astype(np.float32)


class MeshSampler(Sequence):
    """Meshes -> dense surface samples with template captions (layout in the module docstring).

    source: a folder (its mesh files, sorted) or a list of files. points: samples per object.
    labels: {file stem: object name} for captions and labels. up_axis: {file stem: 'y' | 'z'}.
    normalize: centre on the bounding-box centre and scale into the unit sphere.
    """

    def __init__(self, source, points: int = 8192, seed: int = 0, labels: dict | None = None,
                 up_axis: dict | None = None, normalize: bool = False):
        if isinstance(source, (str, Path)):
            folder = Path(source)
            if not folder.is_dir():
                raise CadLayoutError(f'mesh folder {folder} does not exist')
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
        else:
            files = [Path(p) for p in source]
        if points < 1:
            raise ValueError(f'points must be >= 1, got {points}')
        self.files, self.points, self.seed, self.normalize = files, points, seed, normalize
        self.names = {p.stem: (labels or {}).get(p.stem, _words_of(p.stem)) for p in files}
        self.up_axis = dict(up_axis or {})
        self.labels = [self.names[p.stem] for p in files]
        self.keys = [re.sub(r'[^A-Za-z0-9_-]', '_', p.stem) for p in files]
        self._meshes: dict[Path, tuple[np.ndarray, np.ndarray, float]] = {}  # loaded once per file

    def __len__(self) -> int:
        return len(self.files)

    def _mesh(self, path: Path) -> tuple[np.ndarray, np.ndarray, float]:
        if path not in self._meshes:
            import trimesh

            try:
                mesh = trimesh.load(path, force='mesh')
            except Exception as exc:  # trimesh raises many types for unreadable files
                raise CadLayoutError(f'{path}: unreadable mesh ({exc})') from exc
            if len(getattr(mesh, 'faces', ())) == 0:
                raise CadLayoutError(f'{path}: mesh has no faces')
            self._meshes[path] = (np.asarray(mesh.vertices), np.asarray(mesh.faces), float(mesh.area))
        return self._meshes[path]

    def __getitem__(self, i: int) -> Triplet:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        path = self.files[i]
        vertices, faces, area = self._mesh(path)
        seed = int(hashlib.md5(f'{self.seed}/{path.name}'.encode()).hexdigest()[:8], 16)
        pts = sample_surface(vertices, faces, self.points, seed)
        up = self.up_axis.get(path.stem, 'y' if path.suffix.lower() in ('.glb', '.gltf') else 'z')
        if up == 'y':
            pts = y_up_to_z_up(pts)
        if self.normalize:
            centre = (pts.min(0) + pts.max(0)) / 2
            pts = pts - centre
            pts = pts / max(float(np.linalg.norm(pts, axis=1).max()), 1e-12)
        name = self.names[path.stem]
        return Triplet(key=self.keys[i], points=pts.astype(np.float32),
                       caption=_template(name), label=name, label_coarse='', domain=SYNTHETIC,
                       image=_rendered_image(path.parent, path.stem),
                       meta={'source': 'mesh', 'file': str(path), 'faces': int(len(faces)), 'area': area,
                             'up_axis': up})


CAD_LAYOUTS = {'mesh': MeshSampler, 'ulip': UlipTripletFolder, 'openshape': OpenShapeFolder}


def open_reader(root: str | Path, layout: str = 'mesh', **kwargs) -> Sequence[Triplet]:
    """The reader of `layout` (CAD_LAYOUTS) over root, with its own keyword arguments."""
    if layout not in CAD_LAYOUTS:
        raise CadLayoutError(f'unknown CAD layout {layout!r}; choose one of {sorted(CAD_LAYOUTS)}')
    return CAD_LAYOUTS[layout](root, **kwargs)


def embed_command(root, layout: str, spec: str, embeddings_root=None, **kwargs) -> str:
    """The blendclip-embed command line that writes what open_cad(root, layout, spec, ...) reads."""
    parts = ['blendclip-embed', '--cad', str(root), '--layout', layout, '--space', spec]
    parts += ['--out', str(embeddings_root)] if embeddings_root else []
    parts += ['--text', 'label'] if spec.startswith('file:') else []  # class vectors embed no captions
    parts += [f"--reader-arg '{k}={json.dumps(v)}'" for k, v in kwargs.items()]
    return ' '.join(parts)


def open_cad(root: str | Path, layout: str = 'mesh', embeddings: str | None = None,
             embeddings_root: str | Path | None = None, embed_dim: int | None = None,
             **kwargs) -> Sequence[Triplet]:
    """A CAD folder as a training source. embeddings: the text-space spec whose blendclip-embed --cad
    output to attach (it replaces embeddings the folder ships, which may be another space's; without it a
    mesh folder has none); embeddings_root: where that output is, if not root; embed_dim: the width the
    trainer needs, checked. kwargs: the reader's (e.g. points, labels for meshes; split for OpenShape)."""
    reader = open_reader(root, layout, **kwargs)
    if not embeddings:
        return reader
    command = embed_command(root, layout, embeddings, embeddings_root, **kwargs)
    return TripletsWithEmbeddings(reader, embeddings_dir(Path(embeddings_root or root), embeddings),
                                  reader.keys, command, dim=embed_dim)


def embed_cad(root: str | Path, space, layout: str = 'mesh', out: str | Path | None = None,
              text_from: str = 'caption', templates=(), batch_size: int = 64, progress: bool = True,
              **kwargs) -> dict:
    """Embed a CAD folder's triplets in `space` into <out or root>/embeddings/<safe spec>/ (what open_cad
    reads); returns embed_triplets' summary. kwargs: the reader's (they decide captions and labels)."""
    reader = open_reader(root, layout, **kwargs)
    if not len(reader):
        raise CadLayoutError(f'no objects in {root} as a {layout!r} folder (layouts: docs/mining.md)')
    folder = embeddings_dir(Path(out or root), space.spec)
    return embed_triplets(reader, folder, space, text_from, templates, batch_size, progress)
