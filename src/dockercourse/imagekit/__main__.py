import sys

from dockercourse.imagekit import main

sys.exit(main())
