"""Multi-node launches: the paper config's strategy for a 96-rank world under SLURM and torchrun (parsed and built,
nothing started), the sbatch script's arithmetic, and a real 2-node x 2-process run on this machine (gloo) that trains,
checkpoints and resumes through `anygpt fit`, launched the way docs/multinode.md describes."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import yaml
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import ModelParallelStrategy

from anygpt.data.tiny import make_tokenizer, write_tiny_corpus

ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = ROOT / "experiments/pretrain.yaml"
SBATCH = ROOT / "experiments/launch/slurm_pretrain.sbatch"
SOURCES = ("mmc4", "laion2b", "laion-coco", "journeydb", "mls", "commonvoice", "gigaspeech", "music", "coco-val",
           "mls-dev")


@pytest.fixture
def cluster_node(tmp_path, monkeypatch):
    """A working directory where the paper config's paths exist (a tokenizer; empty shard files, never read), 8
    pretend GPUs, and Lightning's process-global rank restored afterwards."""
    import lightning.fabric.accelerators.cuda as fabric_cuda
    import lightning.pytorch.accelerators.cuda as pytorch_cuda

    monkeypatch.chdir(tmp_path)
    make_tokenizer(tmp_path / "checkpoints/Llama-2-7b-hf")
    for source in SOURCES:
        (tmp_path / "data/shards" / source).mkdir(parents=True)
        (tmp_path / "data/shards" / source / "000000.tar").touch()
    for module in (fabric_cuda, pytorch_cuda):
        monkeypatch.setattr(module, "num_cuda_devices", lambda: 8)
    monkeypatch.setattr(rank_zero_only, "rank", getattr(rank_zero_only, "rank", 0))
    for name in ("PL_GLOBAL_SEED", "SLURM_NTASKS", "LOCAL_RANK", "WORLD_SIZE", "RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def build(args: list[str]) -> LightningCLI:
    """The Trainer, model and data module `anygpt fit` would build, without fitting."""
    return LightningCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                        args=args, run=False, auto_configure_optimizers=False)


SLURM_RANK_61 = {"SLURM_NTASKS": "96", "SLURM_NTASKS_PER_NODE": "8", "SLURM_NNODES": "12", "SLURM_NODEID": "7",
                 "SLURM_PROCID": "61", "SLURM_LOCALID": "5", "SLURM_JOB_NAME": "anygpt-pretrain",
                 "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "gpu[007-018]"}
TORCHRUN_RANK_61 = {"TORCHELASTIC_RUN_ID": "anygpt", "WORLD_SIZE": "96", "RANK": "61", "LOCAL_RANK": "5",
                    "GROUP_RANK": "7", "LOCAL_WORLD_SIZE": "8", "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29500"}


@pytest.mark.parametrize(("env", "environment", "address"), [(SLURM_RANK_61, SLURMEnvironment, "gpu007"),
                                                             (TORCHRUN_RANK_61, TorchElasticEnvironment, "10.0.0.7")],
                         ids=["slurm", "torchrun"])
def test_paper_config_builds_a_96_rank_fsdp2_world(cluster_node, env, environment, address):
    for name, value in env.items():
        cluster_node.setenv(name, value)
    cli = build(["--config", str(PRETRAIN)])
    trainer, strategy = cli.trainer, cli.trainer.strategy
    assert isinstance(strategy, ModelParallelStrategy) and isinstance(strategy.cluster_environment, environment)
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size) == (12, 8, 96)
    assert (trainer.global_rank, trainer.local_rank, trainer.node_rank) == (61, 5, 7)
    assert str(strategy.root_device) == "cuda:5" and strategy.cluster_environment.main_address == address
    assert strategy._data_parallel_size * strategy._tensor_parallel_size == trainer.world_size
    assert trainer.num_nodes * trainer.num_devices == trainer.world_size and trainer.precision == "bf16-mixed"
    # the paper's global batch: ranks x micro-batch x accumulation
    assert trainer.world_size * cli.datamodule.hparams.batch_size * trainer.accumulate_grad_batches == 480


def test_slurm_allocation_that_disagrees_with_the_config_is_refused(cluster_node):
    """ModelParallelStrategy takes the world size from SLURM_NTASKS; the mesh check fails before any collective."""
    from lightning.fabric.strategies.model_parallel import _setup_device_mesh

    for name, value in {**SLURM_RANK_61, "SLURM_NNODES": "6", "SLURM_NTASKS": "48"}.items():
        cluster_node.setenv(name, value)
    strategy = build(["--config", str(PRETRAIN)]).trainer.strategy
    assert strategy.world_size == 48
    with pytest.raises(RuntimeError, match="data_parallel_size=96.*should equal the world size \\(48\\)"):
        _setup_device_mesh(strategy._data_parallel_size, strategy._tensor_parallel_size, strategy.world_size,
                           strategy.root_device)


def _sbatch(tmp_path: Path, nodes: int, per_node: int, *extra: str) -> subprocess.CompletedProcess:
    """Run the sbatch script's body with SLURM's variables and a stand-in ``srun`` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_ARGS"\n')
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho gpu001\n")
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SRUN_ARGS": str(tmp_path / "srun.txt"),
           "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_NNODES": str(nodes), "SLURM_NTASKS_PER_NODE": str(per_node),
           "SLURM_NTASKS": str(nodes * per_node), "SLURM_JOB_NODELIST": "gpu[001-004]", "SLURM_CPUS_PER_TASK": "4"}
    return subprocess.run(["bash", str(SBATCH), *extra], env=env, capture_output=True, text=True, timeout=60)


def test_sbatch_script_sizes_the_world_from_the_allocation_and_keeps_the_global_batch(cluster_node, tmp_path):
    proc = _sbatch(tmp_path, 4, 8, "--trainer.max_steps", "10")
    assert proc.returncode == 0, proc.stderr
    assert "4 nodes x 8 ranks = 32 ranks; accumulate 15 micro-batches" in proc.stdout
    srun = (tmp_path / "srun.txt").read_text().splitlines()
    assert srun[:4] == ["--kill-on-bad-exit=1", ".venv/bin/anygpt", "fit", "--config"]
    # What every rank would build from those arguments (rank 13 = node 1, local rank 5).
    for name, value in {**SLURM_RANK_61, "SLURM_NTASKS": "32", "SLURM_NNODES": "4", "SLURM_NODEID": "1",
                        "SLURM_PROCID": "13"}.items():
        cluster_node.setenv(name, value)
    cli = build([str(ROOT / a) if a.startswith("experiments/") else a for a in srun[3:]])
    trainer = cli.trainer
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size, trainer.global_rank) == (4, 8, 32, 13)
    assert trainer.strategy._data_parallel_size == 32 and trainer.max_steps == 10
    assert trainer.world_size * cli.datamodule.hparams.batch_size * trainer.accumulate_grad_batches == 480

    refused = _sbatch(tmp_path, 3, 12)  # 36 ranks do not divide 480
    assert refused.returncode == 1 and "do not divide the global batch 480" in refused.stderr


# ----------------------------------------------------------------------------------------------------------------------
# Two nodes on one machine
# ----------------------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two_nodes(cwd: Path, config: Path, *extra: str) -> None:
    """`anygpt fit` once per node, as docs/multinode.md says: MASTER_ADDR/MASTER_PORT/NODE_RANK set, Lightning starts
    the node's second process itself."""
    port = str(_free_port())
    nodes = []
    for node_rank in (0, 1):
        env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK", "GROUP_RANK")}
        env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                   NODE_RANK=str(node_rank))
        nodes.append(subprocess.Popen([sys.executable, "-m", "anygpt.cli", "fit", "--config", str(config), *extra],
                                      cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for node in nodes:
        try:
            outputs.append(node.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for other in nodes:
                other.kill()
            raise
    for node_rank, (node, out) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 0, f"node {node_rank}:\n{out[-4000:]}"


def _losses(run_dir: Path) -> dict[int, float]:
    rows = csv.DictReader(open(run_dir / "metrics.csv"))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


@pytest.mark.slow
def test_two_nodes_of_two_processes_train_checkpoint_and_resume(tmp_path):
    write_tiny_corpus(tmp_path / "data" / "tiny")
    config = yaml.safe_load((ROOT / "experiments/tiny/pretrain.yaml").read_text())
    config["trainer"].update(
        devices=2, num_nodes=2, max_steps=4, log_every_n_steps=1, limit_val_batches=0,
        strategy={"class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
                  "init_args": {"data_parallel_size": 4, "tensor_parallel_size": 1}},
        logger=[{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs/tiny"}}],
        callbacks=[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": "runs/tiny/checkpoints", "every_n_train_steps": 2, "save_top_k": -1,
                                  "filename": "{step}"}}])
    path = tmp_path / "pretrain_2x2.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    _launch_two_nodes(tmp_path, path)
    checkpoint = tmp_path / "runs/tiny/checkpoints/step=2.ckpt"
    assert checkpoint.is_dir()  # FSDP2's distributed checkpoint: one shard file per rank
    assert len(list(checkpoint.glob("*.distcp"))) == 4
    _launch_two_nodes(tmp_path, path, "--ckpt_path", str(checkpoint))

    first, resumed = (_losses(tmp_path / f"runs/tiny/lightning_logs/version_{v}") for v in (0, 1))
    assert sorted(first) == [0, 1, 2, 3] and sorted(resumed) == [2, 3]
    # the resumed run continues exactly: same weights, optimizer, schedule and data position on all 4 ranks
    assert resumed == pytest.approx({step: first[step] for step in (2, 3)}, abs=1e-5)
