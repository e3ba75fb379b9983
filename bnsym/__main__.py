import sys

from bnsym.cli import main

sys.exit(main())
