#!/usr/bin/env python3
"""Validates a CycloneDX 1.5 JSON document against the official schema (strict).

Usage: validate-sbom.py FILE. Exit 0 when valid; 1 with the errors when not; 2 when the
validator (PyPI: cyclonedx-python-lib[json-validation]) is not installed.
"""
import sys

try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
except ImportError:
    print("error: the CycloneDX validator is missing; install it with "
          "python3 -m pip install 'cyclonedx-python-lib[json-validation]' (make test-deps does)",
          file=sys.stderr)
    sys.exit(2)


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if errors:
        print("invalid CycloneDX 1.5: %s" % errors, file=sys.stderr)
        return 1
    print("valid CycloneDX 1.5: %s" % path)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
