"""Launch the Aesthetic Workbench UI: ``python gradio_app.py [--port N]``."""
from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import argparse

from workbench.config import load_settings
from workbench.ui.app import launch


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the Aesthetic Workbench in your browser.")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1; env WORKBENCH_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860; env WORKBENCH_PORT)")
    parser.add_argument("--data-dir", help="labelled set folder (env WORKBENCH_DATA_DIR)")
    parser.add_argument("--models-dir", help="trained runs folder (env WORKBENCH_MODELS_DIR)")
    parser.add_argument("--weights-dir", help="local weights folder (env WORKBENCH_WEIGHTS_DIR)")
    parser.add_argument("--config", help="YAML file overriding configs/default.yaml")
    args = parser.parse_args()
    settings = load_settings(
        args.config, host=args.host, port=args.port, data_dir=args.data_dir,
        models_dir=args.models_dir, weights_dir=args.weights_dir,
    )
    launch(settings)


if __name__ == "__main__":
    main()
