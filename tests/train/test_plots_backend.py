"""The plot writers save their files without switching matplotlib's backend.

A notebook runs with the inline backend; a library call that forces 'Agg' leaves later
``plt.show()`` calls of the user's notebook showing nothing. The check: select a backend other
than Agg (SVG, headless like Agg), call every writer, and the backend must be the same after;
the files must be real PNG images.
"""

import matplotlib
import numpy as np
import pytest

from train import experiments as ex
from train import gan, plots
from train import plots_recurrent as pr

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def svg_backend():
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(before)


def test_writers_leave_the_backend_alone(tmp_path, svg_backend):
    history = [{"epoch": i, "loss": 1.0 / (i + 1), "accuracy": 0.5 + 0.1 * i} for i in range(3)]
    study = {("relu", "normal"): {"grad_norm": np.array([3.0, 2.0, 1.0])}}
    trials = [ex.Trial(config={"lr": 0.1}, seed=0, history=history, round=0, score=0.3),
              ex.Trial(config={"lr": 0.01}, seed=0, history=history, round=1, score=0.2)]
    search = ex.SearchResult(trials=trials, spaces=[], best_config={"lr": 0.01},
                             best_score=0.2)
    written = [
        plots.plot_history(history, str(tmp_path / "h.png")),
        plots.plot_gradient_norms(study, str(tmp_path / "g.png")),
        gan.save_samples(np.zeros((5, 2), np.float32), str(tmp_path / "points.png")),
        gan.save_samples(np.zeros((4, 8, 8, 1), np.float32), str(tmp_path / "grid.png")),
    ]
    ex.plot_curves(trials, tmp_path / "c.png", metric="loss")
    ex.plot_search(search, tmp_path / "s.png", param="lr")
    fig = pr.plot_gradient_norms_by_lag({"rnn": ([1, 2, 3], [1.0, 0.1, 0.01])},
                                        path=str(tmp_path / "lag.png"))
    written += [str(tmp_path / n) for n in ("c.png", "s.png", "lag.png")]
    assert matplotlib.get_backend() == "svg"
    for path in written:
        with open(path, "rb") as f:
            assert f.read(8) == PNG, path
    assert fig.axes[0].get_yscale() == "log"
