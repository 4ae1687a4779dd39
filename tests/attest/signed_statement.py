"""What every independent check starts with: the DSSE signature, verified by securesystemslib
with the exported public key, and the in-toto Statement inside, validated by
in-toto-attestation."""

import json

from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def verified_statement(envelope_path: str, key_path: str, predicate_type: str):
    """Returns (the Statement message, the signer's key id); raises when anything fails."""
    with open(key_path) as f:
        exported = json.load(f)
    keyid = exported.pop("keyid")
    key = SSlibKey.from_dict(keyid, exported)

    with open(envelope_path) as f:
        envelope = Envelope.from_dict(json.load(f))
    accepted = envelope.verify([key], 1)
    assert keyid in accepted, "the signature was not accepted for the exported key"
    assert envelope.payload_type == "application/vnd.in-toto+json"

    statement_pb = json_format.Parse(envelope.payload, statement_pb2.Statement())
    Statement.copy_from_pb(statement_pb).validate()
    assert statement_pb.predicate_type == predicate_type, statement_pb.predicate_type
    return statement_pb, keyid
