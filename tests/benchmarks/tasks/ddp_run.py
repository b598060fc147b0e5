"""Run one benchmark task on 2 CPU processes (Fabric re-launches this script for rank 1).

    python ddp_run.py TASK BUNDLE CORPUS OUT JUDGE LIMIT GENERATION_JSON SPLIT
"""

import json
import sys

from benchmarks.tasks.registry import load_task

if __name__ == "__main__":
    task, bundle, corpus, out, judge, limit, generation, split = sys.argv[1:9]
    load_task(task)(ckpt=bundle, data=corpus, out=out, judge=judge or None, limit=int(limit), batch_size=1,
                         devices=2, accelerator="cpu", generation=json.loads(generation), split=split).run()
