"""Checks a prov SBOM with the ecosystem's own libraries and the build's own inputs.

Usage: independent_sbom_check.py SBOM LOCKFILE API_MANIFEST DPKG_LIST [ENVELOPE PUBLIC_KEY_JSON]
cyclonedx-python-lib validates the bill against CycloneDX's 1.5 JSON schema, strictly. Then:
every direct dependency of the api (API_MANIFEST's [dependencies]) is listed at a version
Cargo.lock pins, with Cargo.lock's checksum; every Debian package DPKG_LIST names (the runtime
base's `dpkg-query` output: package, version, architecture) is listed at that version. With an
envelope, its signature verifies (securesystemslib) and its Statement carries this very bill.
"""

import json
import sys
import tomllib

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from signed_statement import verified_statement


def main(sbom_path, lock_path, manifest_path, dpkg_path, envelope=None, key=None):
    with open(sbom_path) as f:
        text = f.read()
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, f"not valid CycloneDX 1.5: {error}"
    bom = json.loads(text)

    listed = {}
    for c in bom["components"]:
        purl = PackageURL.from_string(c["purl"])
        assert (purl.name, purl.version) == (c["name"], c["version"]), (
            f"component {c['name']} {c['version']}: its purl says {c['purl']}"
        )
        listed.setdefault((purl.type, purl.name), {})[purl.version] = c

    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)["package"]
    with open(manifest_path, "rb") as f:
        direct = tomllib.load(f)["dependencies"].keys()
    for name in direct:
        pinned = {p["version"]: p.get("checksum") for p in lock if p["name"] == name}
        versions = listed.get(("cargo", name), {})
        found = set(versions) & set(pinned)
        assert found, f"crate {name}: listed {sorted(versions)}, Cargo.lock pins {sorted(pinned)}"
        for v in found:
            hashes = {h["alg"]: h["content"] for h in versions[v].get("hashes", [])}
            assert hashes.get("SHA-256") == pinned[v], f"crate {name} {v}: checksum differs"

    with open(dpkg_path) as f:
        packages = [line.split("\t") for line in f.read().splitlines() if line]
    for name, version, _arch in packages:
        versions = listed.get(("deb", name), {})
        assert version in versions, f"package {name}: listed {sorted(versions)}, dpkg {version}"

    if envelope:
        statement, _ = verified_statement(envelope, key, "https://cyclonedx.org/bom")
        from google.protobuf import json_format

        assert json_format.MessageToDict(statement.predicate) == bom, "the signed bill differs"
    print(
        "independent check ok:",
        len(direct),
        "direct crates,",
        len(packages),
        "Debian packages,",
        len(bom["components"]),
        "components",
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
