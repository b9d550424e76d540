#!/usr/bin/python3
"""Example: the wfm Python client end to end.

Uploads a small labelled family of 2D ellipses (numpy), trains a point-cloud
model while printing its progress, samples clouds of one label back as numpy
arrays, evaluates the model, and does the same for a family of Gaussians.

    python3 python/examples/example.py --server localhost:50051 [--steps 200] [--token T]

with the package installed (README, "Python"), or from the source tree with
PYTHONPATH=python:build/python.

Exits 0 and prints "example: OK" when every step worked.
"""

import argparse
import sys

import numpy as np

from wfm_client import Client, WfmError


def ellipses(rng, count, points):
    """Clouds of `points` points on ellipses: 'wide' (a > b) or 'tall'."""
    clouds, labels = [], []
    for i in range(count):
        wide = i % 2 == 0
        a, b = (1.0, 0.4) if wide else (0.4, 1.0)
        t = rng.uniform(0, 2 * np.pi, points)
        centre = rng.uniform(-0.3, 0.3, 2)
        cloud = np.stack([a * np.cos(t), b * np.sin(t)], axis=1) + centre
        clouds.append(cloud + rng.normal(0, 0.02, cloud.shape))
        labels.append("wide" if wide else "tall")
    return clouds, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--token", default=None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--gaussian-steps", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    with Client(args.server, token=args.token) as wfm:
        print("health:", wfm.health())

        clouds, labels = ellipses(rng, 64, 32)
        stored = wfm.upload_point_clouds("py-ellipses", clouds, labels=labels,
                                         description="example.py", overwrite=True)
        print(f"uploaded {stored.name}: {stored.items} clouds, labels {list(stored.label_names)}")

        def progress(job):
            print(f"  step {job.step}/{job.total_steps} loss {job.loss:.4f}", flush=True)

        job = wfm.train("py-ellipses", "py-ellipses-wfm", family="pointcloud", watch=True,
                        on_update=progress, overwrite=True, steps=args.steps, batch=16, emb=32,
                        layers=1, heads=4, mlp=64, seed=1)
        print(f"trained: job {job.id} {job.step} steps, loss {job.loss:.4f}")

        samples = wfm.sample("py-ellipses-wfm", num=6, label="wide", steps=20, seed=3)
        assert len(samples.clouds) == 6, len(samples.clouds)
        assert samples.points.shape[1] == 2 and np.all(np.isfinite(samples.points))
        assert samples.labels == ["wide"] * 6, samples.labels
        spread = [c.std(axis=0) for c in samples.clouds]
        print("sampled 6 'wide' clouds; mean std (x, y):", np.round(np.mean(spread, axis=0), 3))

        traj = wfm.sample("py-ellipses-wfm", num=2, points=16, steps=5, seed=4, trajectory=True)
        assert traj.trajectory.shape == (6, 32, 2), traj.trajectory.shape

        metrics = wfm.evaluate("py-ellipses-wfm", "py-ellipses", num=16, emd=False, steps=20)
        print(f"evaluate: 1-NNA (chamfer) {metrics.chamfer.one_nna:.3f}")

        # Gaussians: random SPD covariances around two means.
        means = np.concatenate([rng.normal(-2, 0.3, (40, 2)), rng.normal(2, 0.3, (40, 2))])
        factors = rng.normal(0, 0.5, (80, 2, 2))
        covs = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(2)
        g_labels = ["left"] * 40 + ["right"] * 40
        wfm.upload_gaussians("py-gaussians", means, covs, labels=g_labels, overwrite=True)
        wfm.train("py-gaussians", "py-gaussians-wfm", watch=True, overwrite=True,
                  steps=args.gaussian_steps, batch=16, emb=32, layers=2, seed=2)
        g = wfm.sample_gaussians("py-gaussians-wfm", num=10, label="right", steps=20, seed=5)
        assert g.means.shape == (10, 2) and g.covs.shape == (10, 2, 2)
        assert np.all(np.linalg.eigvalsh(g.covs) > 0), "covariances must be positive definite"
        print("sampled 10 'right' Gaussians; mean of means:", np.round(g.means.mean(axis=0), 2))

        try:
            wfm.sample("no-such-model", num=1)
        except WfmError as e:
            assert e.code == "NOT_FOUND", e.code
            print("a missing model is", e.code)
        else:
            raise AssertionError("sampling a missing model must fail")
        assert wfm.health() == "SERVING"
    print("example: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
