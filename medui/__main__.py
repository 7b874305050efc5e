import sys

from medui.cli import main

sys.exit(main())
