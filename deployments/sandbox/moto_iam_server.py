"""moto's server with one fix to its IAM signature check; the sandbox's IAM-enforcing moto.

Run by file path with ``python -I`` (``deployments.sandbox.aws.moto_command``), with
``INITIAL_NO_AUTH_ACTION_COUNT`` in the environment; arguments are moto_server's (``-H``, ``-p``).
It imports moto only, so it runs the same from any checkout or install.

The fix (moto 5.2.5, ``moto/iam/access_control.py``, ``IAMRequestBase._create_aws_request``): to
check a request's SigV4 signature moto rebuilds the request with ``data=self._body or
self._data``. A request with no body (every Route53 read: ListHostedZones, ListHostedZonesByName,
GetHostedZone, ListResourceRecordSets, GetChange) is signed by the client over the empty payload,
but rebuilt over ``self._data``, a dict of moto's parsed parameters (for these, the request's
headers): the signature never matches and even an ``Action: "*"`` user gets 403
SignatureDoesNotMatch. Here a GET, HEAD or DELETE without a body is rebuilt with an empty body, as
the client signed it. Form-encoded POSTs (IAM, STS) keep moto's behaviour: their body reaches
moto already parsed into ``self._data``, which is why moto falls back to it. What a user may do
is still decided by moto's own policy evaluation, unchanged.
"""

from __future__ import annotations

import sys

_BODYLESS = ("GET", "HEAD", "DELETE")


def _install_signature_fix() -> None:
    from moto.iam import access_control

    original = access_control.IAMRequestBase._create_aws_request

    def _create_aws_request(self):  # type: ignore[no-untyped-def]
        request = original(self)
        if self._method in _BODYLESS and not self._body:
            request.data = b""
        return request

    access_control.IAMRequestBase._create_aws_request = _create_aws_request


def main(argv: list[str] | None = None) -> None:
    _install_signature_fix()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
