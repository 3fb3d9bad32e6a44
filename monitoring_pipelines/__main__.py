import sys

from monitoring_pipelines.cli import main

sys.exit(main())
