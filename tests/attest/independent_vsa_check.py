"""Checks a prov verification summary with the ecosystem's own libraries, not prov's code.

Usage: independent_vsa_check.py ENVELOPE PUBLIC_KEY_JSON PASSED|FAILED
securesystemslib verifies the DSSE signature with the exported public key; in-toto-attestation
validates the Statement and parses the predicate strictly with its VSA v1 message. Its message
declares verifiedLevels a single string where the SLSA specification has a list
(in-toto/attestation#425), so that one field is checked here against the specification's
rules and every other field by the library.
"""

import re
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

from signed_statement import verified_statement

SLSA_LEVEL = re.compile(r"^SLSA_BUILD_LEVEL_[0-3]$")


def main(envelope_path: str, key_path: str, expected: str) -> None:
    statement_pb, keyid = verified_statement(
        envelope_path, key_path, "https://slsa.dev/verification_summary/v1"
    )
    predicate = json_format.MessageToDict(statement_pb.predicate)
    levels = predicate.pop("verifiedLevels")
    vsa = json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())

    assert vsa.verifier.id, "no verifier.id"
    assert vsa.time_verified.seconds > 0, "no timeVerified"
    assert vsa.resource_uri.startswith("prov://"), vsa.resource_uri
    assert vsa.policy.digest["sha256"], "the policy has no digest"
    assert vsa.verification_result == expected, (vsa.verification_result, expected)

    assert isinstance(levels, list) and all(isinstance(l, str) for l in levels), levels
    if expected == "FAILED":
        assert levels == ["FAILED"], levels
        failed = statement_pb.subject[0].annotations["failedChecks"]
        could_not = statement_pb.subject[0].annotations.fields.get("couldNotCheck")
        assert len(failed) > 0 or could_not is not None, "a FAILED summary names no failure"
    else:
        assert len(vsa.input_attestations) == 2, "the attestation and the chain head"
        slsa = [l for l in levels if l.startswith("SLSA_")]
        assert len(slsa) == 1 and SLSA_LEVEL.match(slsa[0]), levels
        assert "FAILED" not in levels, levels
    print(
        "independent check ok:",
        vsa.verification_result,
        ",".join(levels),
        vsa.resource_uri,
        "sha256:" + statement_pb.subject[0].digest["sha256"],
        "signed by",
        keyid[:12],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
