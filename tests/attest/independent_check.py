"""Checks prov's attestation with the ecosystem's own libraries, not prov's code.

Usage: independent_check.py ENVELOPE PUBLIC_KEY_JSON
securesystemslib verifies the DSSE signature with the exported public key (the key id must
match); in-toto-attestation parses and validates the Statement and the SLSA v1 predicate
strictly. Also shows the DSSE encoding matches the specification's test vector.
"""

import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from securesystemslib.dsse import Envelope

from signed_statement import verified_statement


def main(envelope_path: str, key_path: str) -> None:
    vector = Envelope(b"hello world", "http://example.com/HelloWorld", [])
    assert vector.pae() == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"

    statement_pb, keyid = verified_statement(
        envelope_path, key_path, "https://slsa.dev/provenance/v1"
    )
    predicate = json_format.MessageToDict(statement_pb.predicate)
    provenance = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    assert provenance.build_definition.build_type
    assert provenance.run_details.builder.id
    print(
        "independent check ok:",
        statement_pb.subject[0].name,
        "sha256:" + statement_pb.subject[0].digest["sha256"],
        "signed by",
        keyid[:12],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
