"""Writes the small example datasets that ship beside the configs (run from the repo root):

    python training/examples/make_examples.py

- ``churn.csv``: customers of a made-up subscription service. Numeric and categorical
  columns, a few missing values, duplicated rows and outliers, so the cleaning steps have
  something to do. The label ``churned`` depends on tenure, support calls, plan and price.
- ``shapes/``: 16x16 grey PNGs of circles, squares and triangles, one folder per class,
  drawn at random sizes and positions.

Both are generated from a fixed seed, so running the script again gives the same files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write_churn(path: Path, rows: int = 400, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    plans = np.array(["basic", "standard", "premium"])
    regions = np.array(["north", "south", "east", "west"])
    plan = rng.choice(plans, rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(regions, rows)
    tenure = rng.integers(1, 72, rows).astype(float)
    calls = rng.poisson(1.5, rows).astype(float)
    price = np.round(rng.normal(30, 8, rows) + (plan == "premium") * 25, 2)
    score = -0.05 * tenure + 0.6 * calls + 0.04 * (price - 30) + (plan == "basic") * 0.8
    churned = (score + rng.normal(0, 0.8, rows) > 0).astype(int)
    table = [
        [f"{t:.0f}", f"{c:.0f}", f"{p:.2f}", pl, r, y]
        for t, c, p, pl, r, y in zip(tenure, calls, price, plan, region, churned, strict=True)
    ]
    # Dirt for the cleaning stage: blanks, a few absurd prices, repeated rows.
    for i in rng.choice(rows, 12, replace=False):
        table[i][rng.integers(0, 5)] = ""
    for i in rng.choice(rows, 4, replace=False):
        table[i][2] = "9999.00"
    table += [list(table[i]) for i in rng.choice(rows, 6, replace=False)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["tenure_months", "support_calls", "monthly_price", "plan", "region", "churned"]
        )
        writer.writerows(table)


def _shape(kind: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    r = rng.uniform(3.0, 6.5)
    cy, cx = rng.uniform(r + 0.5, size - r - 0.5, 2)
    if kind == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    elif kind == "square":
        mask = (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
    else:  # triangle, apex up
        mask = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)
    image = np.where(mask, rng.uniform(160, 255), rng.uniform(0, 60))
    image = image + rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_shapes(root: Path, per_class: int = 40, seed: int = 11) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for kind in ("circle", "square", "triangle"):
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(_shape(kind, rng)).save(folder / f"{kind}_{i:03d}.png", optimize=True)


if __name__ == "__main__":
    write_churn(HERE / "churn.csv")
    write_shapes(HERE / "shapes")
    print(f"wrote {HERE / 'churn.csv'} and {HERE / 'shapes'}/")
