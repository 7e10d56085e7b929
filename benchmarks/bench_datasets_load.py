"""Load time of every embedded dataset, cold (fresh interpreter) and warm (second call).

    python benchmarks/bench_datasets_load.py

Cold runs use a private empty cache for MNIST-1D's first (generating) load and the shared
cache afterwards, so the table shows generate, cached-cold and warm times side by side.
Timings on the shared 2-core machines are noisy; compare rows from one run.
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPET = ("import time; t0 = time.perf_counter(); from train import datasets as D; "
           "t1 = time.perf_counter(); D.load({name!r}); t2 = time.perf_counter(); "
           "print(t1 - t0, t2 - t1)")


def cold(name, cache):
    env = dict(os.environ, JAXZOO_DATA=cache)
    out = subprocess.run([sys.executable, '-c', SNIPPET.format(name=name)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    sys.path.insert(0, ROOT)
    from train import datasets as D
    real = {'mnist', 'fashion_mnist', 'cifar10', 'bike_sharing', 'text', 'parallel', 'text8',
            'image_folder'}
    with tempfile.TemporaryDirectory() as cache:
        os.environ['JAXZOO_DATA'] = cache
        print(f"{'dataset':18s} {'import s':>9s} {'cold load s':>12s} {'warm load s':>12s}")
        for name in sorted(set(D.names()) - real):
            imp, first = cold(name, cache)  # for mnist1d: generates and fills the cache
            if name == 'mnist1d':
                imp2, second = cold(name, cache)
                print(f"{'mnist1d (generate)':18s} {imp:9.3f} {first:12.3f} {'':>12s}")
                imp, first = imp2, second
            t = time.perf_counter()
            D.load(name)
            warm = time.perf_counter() - t
            print(f'{name:18s} {imp:9.3f} {first:12.3f} {warm:12.3f}')


if __name__ == '__main__':
    main()
