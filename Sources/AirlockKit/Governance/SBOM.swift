import AirlockFormat
import Foundation

/// A CycloneDX 1.5 description of a release (`airlock sbom BUNDLE`): the release as the
/// metadata component, each file a `file` component with its SHA-256, the model a
/// `machine-learning-model` component with its name and snapshot.
public enum SBOM {
    /// The CycloneDX 1.5 document for the bundle `s` describes, from its manifest alone (nothing is
    /// verified). The same bundle always gives the same document.
    public static func cycloneDX(_ s: BundleSummary) -> JSONValue {
        let m = s.manifest
        var components: [JSONValue] = []
        if let model = m.components["model"] {
            var props: [JSONValue] = [
                .object(["name": .string("airlock:component-digest"), "value": .string(model.digest.prefixed)])
            ]
            if let e = model.metadata["endpoint"] { props.append(.object(["name": .string("airlock:endpoint"), "value": .string(e)])) }
            var o: [String: JSONValue] = [
                "type": .string("machine-learning-model"),
                "bom-ref": .string("model"),
                "name": .string(model.metadata["name"] ?? "model"),
                "properties": .array(props),
            ]
            if let snap = model.metadata["snapshot"] { o["version"] = .string(snap) }
            components.append(.object(o))
        }
        for f in m.files {
            components.append(
                .object([
                    "type": .string("file"),
                    "bom-ref": .string("file:" + f.path),
                    "name": .string(f.path),
                    "hashes": .array([.object(["alg": .string("SHA-256"), "content": .string(f.sha256.hex)])]),
                    "properties": .array([
                        .object(["name": .string("airlock:size"), "value": .string(String(f.size))]),
                        .object(["name": .string("airlock:mode"), "value": .string(f.modeString)]),
                    ]),
                ]))
        }
        var metaProps: [JSONValue] = [
            .object(["name": .string("airlock:bundle-id"), "value": .string(s.bundleID.prefixed)]),
            .object(["name": .string("airlock:sequence"), "value": .string(String(m.sequence))]),
        ]
        for (name, c) in m.components.sorted(by: { $0.key < $1.key }) {
            metaProps.append(.object(["name": .string("airlock:component:\(name)"), "value": .string(c.digest.prefixed)]))
        }
        if let e = m.attestations?["eval"], let a = try? EvalAttestation(json: e, source: "eval") {
            metaProps.append(.object(["name": .string("airlock:eval-score"), "value": .string(EvalAttestation.decimal(a.score))]))
            metaProps.append(.object(["name": .string("airlock:eval-threshold"), "value": .string(EvalAttestation.decimal(a.threshold))]))
            metaProps.append(.object(["name": .string("airlock:eval-suite"), "value": .string(a.suite.prefixed)]))
        }
        // The serial number is derived from the bundle id (a version 8, "custom", UUID of
        // RFC 9562), so the same bundle always gives the same document.
        let h = s.bundleID.hex
        let uuid =
            "\(h.prefix(8))-\(h.dropFirst(8).prefix(4))-8\(h.dropFirst(13).prefix(3))-\(["8", "9", "a", "b"][Int(String(h.dropFirst(16).prefix(1)), radix: 16)! % 4])\(h.dropFirst(17).prefix(3))-\(h.dropFirst(20).prefix(12))"
        // The release depends on its files and its model.
        let refs: [JSONValue] = components.compactMap { $0.objectValue?["bom-ref"] }
        return .object([
            "bomFormat": .string("CycloneDX"),
            "specVersion": .string("1.5"),
            "serialNumber": .string("urn:uuid:\(uuid)"),
            "version": .integer(1),
            "metadata": .object([
                "timestamp": .string(m.created),
                "tools": .object([
                    "components": .array([
                        .object(["type": .string("application"), "name": .string("airlock"), "version": .string(BundleLayout.toolVersion)])
                    ])
                ]),
                "component": .object([
                    "type": .string("application"),
                    "bom-ref": .string("release"),
                    "name": .string(m.name),
                    "version": .string(m.version),
                    "properties": .array(metaProps),
                ]),
            ]),
            "components": .array(components),
            "dependencies": .array([.object(["ref": .string("release"), "dependsOn": .array(refs)])]),
        ])
    }
}
