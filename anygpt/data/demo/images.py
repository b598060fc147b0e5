"""Procedural scenes with COCO-style compositional captions.

A scene is one or two groups of identical shapes (count, size, colour, shape, position) on a textured background.
Every caption is derived from the scene parameters, so a model that captions well must get count, colour, shape and
position right; the parameters are kept next to the captions (``scene`` key) for probes and benchmarks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # stored image size (pixels); drawn at SUPERSAMPLE x this and downsampled for anti-aliasing
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40),
    "orange": (245, 140, 30), "purple": (140, 60, 180), "pink": (245, 130, 190), "white": (245, 245, 245),
    "black": (20, 20, 20), "gray": (128, 128, 128), "brown": (130, 80, 40), "cyan": (40, 210, 220),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "ring", "hexagon")
SIZES = {"small": 0.07, "medium": 0.11, "large": 0.16}  # radius as a fraction of the image side
TEXTURES = ("plain", "striped", "dotted", "checkered", "gradient", "noisy")
REGIONS = {  # name -> (x0, y0, x1, y1) in unit coordinates, the box where the group's centres fall
    "top left": (0.0, 0.0, 0.45, 0.45),
    "top": (0.2, 0.0, 0.8, 0.4),
    "top right": (0.55, 0.0, 1.0, 0.45),
    "left": (0.0, 0.2, 0.4, 0.8),
    "center": (0.25, 0.25, 0.75, 0.75),
    "right": (0.6, 0.2, 1.0, 0.8),
    "bottom left": (0.0, 0.55, 0.45, 1.0),
    "bottom": (0.2, 0.6, 0.8, 1.0),
    "bottom right": (0.55, 0.55, 1.0, 1.0),
}
PAIR_LAYOUTS = {  # relation phrase -> (region of the first group, region of the second group)
    "to the left of": ("left", "right"), "to the right of": ("right", "left"), "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
MAX_COUNT = {"small": 5, "medium": 3, "large": 2}

_SIZE_SYNONYMS = {"small": ("small", "little", "tiny"), "medium": ("medium", "medium-sized", ""),
                  "large": ("large", "big", "huge")}
_REGION_PHRASES = {
    "top left": ("in the top left corner", "in the upper left", "near the top left"),
    "top": ("at the top", "near the top edge", "in the upper part"),
    "top right": ("in the top right corner", "in the upper right", "near the top right"),
    "left": ("on the left", "on the left side", "near the left edge"),
    "center": ("in the center", "in the middle", "at the center"),
    "right": ("on the right", "on the right side", "near the right edge"),
    "bottom left": ("in the bottom left corner", "in the lower left", "near the bottom left"),
    "bottom": ("at the bottom", "near the bottom edge", "in the lower part"),
    "bottom right": ("in the bottom right corner", "in the lower right", "near the bottom right"),
}
_TEXTURE_WORDS = {
    "plain": ("plain", "solid", "flat"),
    "striped": ("striped",) * 3,
    "dotted": ("dotted", "spotted", "dotted"),
    "checkered": ("checkered", "checked", "checkered"),
    "gradient": ("fading", "gradient", "shaded"),
    "noisy": ("grainy", "noisy", "speckled"),
}


def sample_scene(rng: np.random.Generator) -> dict:
    """Draw the parameters of one scene (everything a caption may mention)."""
    bg_colour = str(rng.choice(list(COLOURS)))
    texture = str(rng.choice(TEXTURES))
    relation = None if rng.random() < 0.6 else str(rng.choice(list(PAIR_LAYOUTS)))  # one group, or two
    regions = [str(rng.choice(list(REGIONS)))] if relation is None else list(PAIR_LAYOUTS[relation])
    used: set[tuple[str, str]] = set()
    groups = []
    for region in regions:
        while True:  # two groups never share colour and shape, so captions stay unambiguous
            colour = str(rng.choice([c for c in COLOURS if c != bg_colour]))
            shape = str(rng.choice(SHAPES))
            if (colour, shape) not in used:
                break
        used.add((colour, shape))
        size = str(rng.choice(list(SIZES)))
        count = int(rng.integers(1, MAX_COUNT[size] + 1))
        groups.append({"shape": shape, "colour": colour, "size": size, "count": count, "region": region})
    return {"background": {"colour": bg_colour, "texture": texture}, "groups": groups, "relation": relation}


def _shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, offset: float) -> list[tuple[float, float]]:
        angles = [offset + 2 * math.pi * k / n for k in range(n)]
        return [(cx + radius * math.cos(t), cy + radius * math.sin(t)) for t in angles]

    if shape == "square":
        return ring(4, r * 1.1, angle + math.pi / 4)
    if shape == "diamond":
        return [(cx, cy - r * 1.15), (cx + r * 0.75, cy), (cx, cy + r * 1.15), (cx - r * 0.75, cy)]
    if shape == "triangle":
        return ring(3, r * 1.15, -math.pi / 2)
    if shape == "hexagon":
        return ring(6, r, angle)
    if shape == "star":
        outer, inner = ring(5, r * 1.2, -math.pi / 2), ring(5, r * 0.5, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, b = r * 0.35, r * 1.05
        return [(cx - a, cy - b), (cx + a, cy - b), (cx + a, cy - a), (cx + b, cy - a), (cx + b, cy + a),
                (cx + a, cy + a), (cx + a, cy + b), (cx - a, cy + b), (cx - a, cy + a), (cx - b, cy + a),
                (cx - b, cy - a), (cx - a, cy - a)]
    raise ValueError(f"no polygon for shape {shape!r}")


def _background(rng: np.random.Generator, colour: str, texture: str, side: int) -> np.ndarray:
    base = np.array(COLOURS[colour], dtype=np.float32)
    img = np.broadcast_to(base, (side, side, 3)).copy()
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    # a lighter or darker shade of the same colour draws the pattern, so the colour name stays true
    shade = base * 0.6 if base.mean() > 110 else base * 0.55 + 110
    if texture == "striped":
        period = rng.uniform(0.12, 0.25)
        coord = xx if rng.random() < 0.5 else yy
        img[(coord / period) % 1.0 < 0.5] = shade
    elif texture == "dotted":
        period = rng.uniform(0.14, 0.22)
        fx, fy = (xx / period) % 1.0 - 0.5, (yy / period) % 1.0 - 0.5
        img[fx**2 + fy**2 < 0.06] = shade
    elif texture == "checkered":
        period = rng.uniform(0.15, 0.3)
        img[((xx // period) + (yy // period)) % 2 == 1] = shade
    elif texture == "gradient":
        t = xx if rng.random() < 0.5 else yy
        img = base * (1 - t[..., None]) + shade * t[..., None]
    elif texture == "noisy":
        img = img + rng.normal(0, 28, size=(side, side, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, region: str, count: int, r: float, taken: list[tuple[float, float, float]]):
    """Centres (unit coordinates) for ``count`` shapes of radius ``r`` inside the region, without overlaps."""
    x0, y0, x1, y1 = REGIONS[region]
    lo_x, hi_x = max(x0, r * 1.2), min(x1, 1 - r * 1.2)
    lo_y, hi_y = max(y0, r * 1.2), min(y1, 1 - r * 1.2)
    centres = []
    for _ in range(count):
        best, best_gap = None, -1.0
        for _ in range(60):  # rejection sampling; keep the least-overlapping candidate if the region is crowded
            c = (rng.uniform(lo_x, max(lo_x, hi_x)), rng.uniform(lo_y, max(lo_y, hi_y)))
            gap = min((math.dist(c, (tx, ty)) - (r + tr) * 1.3 for tx, ty, tr in taken), default=1.0)
            if gap > best_gap:
                best, best_gap = c, gap
            if gap > 0:
                break
        taken.append((best[0], best[1], r))
        centres.append(best)
    return centres


def render_scene(scene: dict, rng: np.random.Generator, size: int = SIZE) -> tuple[Image.Image, dict]:
    """Draw the scene; returns the image and the scene with object centres (unit coordinates) filled in."""
    side = size * SUPERSAMPLE
    bg = scene["background"]
    image = Image.fromarray(_background(rng, bg["colour"], bg["texture"], side))
    draw = ImageDraw.Draw(image)
    taken: list[tuple[float, float, float]] = []
    groups = []
    for group in scene["groups"]:
        r = SIZES[group["size"]] * rng.uniform(0.9, 1.1)
        centres = _place(rng, group["region"], group["count"], r, taken)
        fill = COLOURS[group["colour"]]
        for cx, cy in centres:
            px, py, pr = cx * side, cy * side, r * side
            if group["shape"] == "circle":
                draw.ellipse([px - pr, py - pr, px + pr, py + pr], fill=fill)
            elif group["shape"] == "ring":
                draw.ellipse([px - pr, py - pr, px + pr, py + pr], outline=fill, width=max(2, int(pr * 0.35)))
            else:
                draw.polygon(_shape_polygon(group["shape"], px, py, pr, rng.uniform(-0.3, 0.3)), fill=fill)
        groups.append({**group, "centres": [[round(x, 4), round(y, 4)] for x, y in centres]})
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image, {**scene, "groups": groups}


def shape_noun(shape: str, count: int) -> str:
    """"circle" or "circles" (one "cross", several "crosses")."""
    return shape if count == 1 else "crosses" if shape == "cross" else shape + "s"


def _noun_phrase(rng: np.random.Generator, group: dict, digits: bool = False) -> str:
    count, shape = group["count"], group["shape"]
    size = str(rng.choice(_SIZE_SYNONYMS[group["size"]]))
    noun = shape_noun(shape, count)
    words = [w for w in ([size, group["colour"]] if rng.random() < 0.7 else [group["colour"], size]) if w] + [noun]
    if count == 1:
        det = "an" if words[0][0] in "aeiou" else "a"
    else:
        det = str(count) if digits else NUMBER_WORDS[count]
    return " ".join([det, *words])


def _background_phrase(rng: np.random.Generator, bg: dict) -> str:
    tex = str(rng.choice(_TEXTURE_WORDS[bg["texture"]]))
    word = str(rng.choice(("background", "backdrop", "background")))
    return f"{tex} {bg['colour']} {word}" if rng.random() < 0.6 else f"{bg['colour']} {tex} {word}"


def caption_scene(scene: dict, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` captions with varied phrasing; each names every group's count, size, colour, shape and position."""
    groups, bg, relation = scene["groups"], scene["background"], scene["relation"]
    captions: list[str] = []
    attempts = 0
    while len(captions) < n:
        attempts += 1
        digits = rng.random() < 0.15
        nps = [_noun_phrase(rng, g, digits) for g in groups]
        back = _background_phrase(rng, bg)
        style = int(rng.integers(0, 5))
        verb = "is" if groups[0]["count"] == 1 else "are"
        if relation is None:
            where = str(rng.choice(_REGION_PHRASES[groups[0]["region"]]))
            text = [
                f"{nps[0]} {where} of a {back}",
                f"a picture of {nps[0]} {where} on a {back}",
                f"there {verb} {nps[0]} {where} of the image, on a {back}",
                f"{nps[0]} on a {back}, placed {where}",
                f"an image showing {nps[0]} {where} against a {back}",
            ][style]
        else:
            text = [
                f"{nps[0]} {relation} {nps[1]} on a {back}",
                f"a picture of {nps[0]} {relation} {nps[1]}, on a {back}",
                f"there {verb} {nps[0]} {relation} {nps[1]} against a {back}",
                f"on a {back}, {nps[0]} {verb} {relation} {nps[1]}",
                f"an image where {nps[0]} {verb} {relation} {nps[1]} on a {back}",
            ][style]
        text = text[0].upper() + text[1:] + "."
        if text not in captions or attempts > 50:
            captions.append(text)
    return captions


def tokenize_caption(text: str) -> list[str]:
    """Karpathy-style tokens: lowercase words without punctuation."""
    return [t for t in "".join(c if c.isalnum() or c in " -'" else " " for c in text.lower()).split() if t]


def make_image(args: tuple[int, int, str]) -> dict:
    """Worker: render image ``index`` into ``path`` (seeded by (seed, index)); returns its metadata."""
    seed, index, path = args
    rng = np.random.default_rng([seed, 1, index])
    scene = sample_scene(rng)
    image, scene = render_scene(scene, rng)
    captions = caption_scene(scene, rng)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=False)
    return {"index": index, "scene": scene, "captions": captions}
