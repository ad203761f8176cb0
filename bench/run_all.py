"""Run every benchmark in turn (`make bench`). Each writes its JSON under bench/results/."""
import importlib

BENCHMARKS = ["bench.sandbox_throughput", "bench.render"]

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"=== {name}")
        importlib.import_module(name).main([])
