"""Shared pytest fixtures: small worlds so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

# The test session is a boundary of work like a grid cell: one torch thread, set once here
# (library code never sets threads; see driftrank.experiments.threads).
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency
    pass

SMALL = dict(n_users=400, n_items=300, max_steps=10_000)


@pytest.fixture
def small():
    """Keyword sizes of a small world."""
    return dict(SMALL)


# ---------------------------------------------------------------------------------- Ray
# ONE Ray session for the whole test run, started by the first test that asks for it and shut
# down at the end. It is a 2-node local cluster (1 CPU and a 100 MiB object store per node,
# custom resources ``test_node_a`` / ``test_node_b``), so multi-node placement is testable
# without a second session. Tests using it: ask for fractional CPUs (num_cpus=0.5), and give
# every ray.get / ray.wait a timeout. Workers have tests/ on their PYTHONPATH, so classes defined
# in test modules can be sent to them.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

RAY_NODE_RESOURCES = ("test_node_a", "test_node_b")
RAY_OBJECT_STORE = 100 * 1024 * 1024
RAY_TIMEOUT_S = 120


class RayTestCluster:
    """What the ``ray_cluster`` fixture yields."""

    def __init__(self, cluster):
        import ray

        self.cluster = cluster
        self.address = cluster.address
        self.node_of_resource: dict[str, str] = {}  # custom resource -> node id
        for node in ray.nodes():
            for name in RAY_NODE_RESOURCES:
                if node["Alive"] and name in node["Resources"]:
                    self.node_of_resource[name] = node["NodeID"]


@pytest.fixture(scope="session")
def ray_cluster():
    """The shared 2-node Ray session (see above); yields a :class:`RayTestCluster`."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        raise RuntimeError("Ray was initialised outside the ray_cluster/ray_session fixtures; "
                           "use the fixture so the whole run shares one session")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, saved) if p)
    cluster = None
    try:  # the raylets (and so their workers) inherit PYTHONPATH
        cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=1, resources={RAY_NODE_RESOURCES[0]: 1},
            object_store_memory=RAY_OBJECT_STORE, include_dashboard=False))
        cluster.add_node(num_cpus=1, resources={RAY_NODE_RESOURCES[1]: 1},
                         object_store_memory=RAY_OBJECT_STORE)
        cluster.wait_for_nodes(timeout=RAY_TIMEOUT_S)
    except BaseException:
        if cluster is not None:
            cluster.shutdown()
        raise
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    from driftrank.adapt.ray_session import start_ray

    start_ray(cluster.address, log_to_driver=False)
    try:
        yield RayTestCluster(cluster)
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """The shared Ray session (the ``ray`` module, initialised); 2 CPUs in all."""
    import ray

    return ray
