"""The demo runs on relplan's core alone: `./dev demo` installs nothing else."""

from __future__ import annotations

import subprocess
import sys

# Blocks the packages the core does not depend on: importing one raises ImportError.
BLOCKED = ("pandas", "pyspark", "pyflink", "redis", "hypothesis", "pytest")

SCRIPT = f"""
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not a core dependency)", name=name)
        return None

sys.meta_path.insert(0, Blocked())
sys.argv = ["relplan.demo", "--rows", "5000"]
import runpy
runpy.run_module("relplan.demo", run_name="__main__")
"""


def test_the_demo_needs_only_the_core() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # Its first result is the plan, before any data is made; it ends serving one card.
    assert out.startswith("== explain() of the compiled plan")
    assert "served == training data: True" in out
    # Transactions enriched with the merchants dimension as of each one's time, and a derived feature.
    assert "== Transactions_Merchants_tumble_1d_by_account_id: " in out and "risky_merchant_spend_tumble_1d" in out
    assert "merchant_avg_to_max_7d := average_transaction_amount_by_merchant_1h / max_transaction_amount_7d" in out
    assert "== timings" in out
