"""The interop tier: tests that ask bbolt itself, through a small Go helper.

The helper (``bbolthelper/``, driven by :mod:`tests.interop.gohelper`) is built
once per source hash against Debian's Go and bbolt 1.3.6 source
(``apt-get install golang-go golang-github-coreos-bbolt-dev``; ``.ci/run`` installs
them).  It makes bbolt databases, dumps what bbolt sees in a file (``tx.Check``,
a content hash, ``Stats``), runs ``bbolt.Compact``, and replays traces on bbolt's
own freelists.

Run the tier alone with ``pytest -m interop``, or leave it out with
``pytest -m "not interop"``.  Without Go or bbolt's source its tests skip with one
line naming the packages; with ``CI=true`` they fail instead.  The thorough run
(``FREELIST_THOROUGH=1`` or ``FREELIST_HYPOTHESIS_PROFILE=thorough``) adds traces
of 10^6 free pages and 300 random file histories (about ten minutes).
"""
