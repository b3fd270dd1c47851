import sys

from tweet_classifier.cli import main

sys.exit(main())
