import sys

from smlmnet.cli import main

sys.exit(main())
