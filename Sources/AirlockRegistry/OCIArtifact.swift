import AirlockFormat
import Foundation

/// How a bundle is stored in an OCI registry (docs/registry.md): an image manifest whose config
/// is the bundle's signed `manifest.json` and whose one layer is the bundle file.
public enum OCIArtifact {
    /// The image manifest's media type (OCI image spec v1.1).
    public static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
    /// The artifact type: what the manifest holds.
    public static let artifactType = "application/vnd.airlock.bundle.v1"
    /// The config: the bundle's `airlock/manifest.json`, byte for byte (its digest is the bundle id).
    public static let configMediaType = "application/vnd.airlock.manifest.v1+json"
    /// The most bytes of an image manifest Airlock reads (the distribution registry's own limit).
    public static let maxManifestBytes = 4 << 20

    /// Annotation keys on the image manifest. Like the registry itself, they are hints for people
    /// and tools: nothing in them is trusted; the bundle's signatures decide.
    public enum Annotation {
        /// The release name.
        public static let name = "dev.airlock.name"
        /// The release version.
        public static let version = "dev.airlock.version"
        /// The release's sequence number.
        public static let sequence = "dev.airlock.sequence"
        /// The bundle id (`sha256:` of the manifest).
        public static let bundleID = "dev.airlock.bundle-id"
        /// For a delta bundle: the bundle id of its base.
        public static let deltaBase = "dev.airlock.delta-base"
        /// The standard title: the bundle's file name.
        public static let title = "org.opencontainers.image.title"
        /// The standard creation time: the release's `created`.
        public static let created = "org.opencontainers.image.created"
    }

    /// The layer's media type for a bundle compressed with `compression`.
    public static func layerMediaType(_ compression: Compression) -> String {
        switch compression {
        case .zstd: return "application/vnd.airlock.bundle.v1.tar+zstd"
        case .gzip: return "application/vnd.airlock.bundle.v1.tar+gzip"
        case .none: return "application/vnd.airlock.bundle.v1.tar"
        }
    }

    /// Every layer media type a bundle may have.
    public static let layerMediaTypes: Set<String> = Set(Compression.allCases.map(layerMediaType))
}

/// A content descriptor: what a manifest says about a blob.
public struct OCIDescriptor: Sendable, Equatable {
    /// The blob's media type.
    public var mediaType: String
    /// The SHA-256 of the blob's bytes.
    public var digest: SHA256Digest
    /// The blob's size in bytes.
    public var size: UInt64
    /// Annotations, if any.
    public var annotations: [String: String] = [:]

    /// A descriptor of `size` bytes hashing to `digest`.
    public init(mediaType: String, digest: SHA256Digest, size: UInt64, annotations: [String: String] = [:]) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
    }

    var json: JSONValue {
        var o: [String: JSONValue] = ["mediaType": .string(mediaType), "digest": .string(digest.prefixed), "size": .integer(size)]
        if !annotations.isEmpty { o["annotations"] = .object(annotations.mapValues { .string($0) }) }
        return .object(o)
    }
}

/// The image manifest of a bundle: built by `push`, checked by `pull`, `install` and `verify`.
public struct OCIBundleManifest: Sendable, Equatable {
    /// The bundle's `manifest.json`.
    public var config: OCIDescriptor
    /// The bundle file.
    public var layer: OCIDescriptor
    /// The manifest's annotations (hints only).
    public var annotations: [String: String]

    /// A manifest of `config` and `layer`.
    public init(config: OCIDescriptor, layer: OCIDescriptor, annotations: [String: String]) {
        self.config = config
        self.layer = layer
        self.annotations = annotations
    }

    /// The manifest's bytes as pushed: canonical JSON, so the same bundle gives the same digest.
    public func encoded() -> [UInt8] {
        CanonicalJSON.encode(
            .object([
                "schemaVersion": .integer(2), "mediaType": .string(OCIArtifact.manifestMediaType), "artifactType": .string(OCIArtifact.artifactType),
                "config": config.json, "layers": .array([layer.json]), "annotations": .object(annotations.mapValues { .string($0) }),
            ]))
    }

    /// Parses and checks a manifest fetched from `source`, whose media type the registry gave as
    /// `contentType`. Registry content is untrusted: anything but an image manifest of one
    /// Airlock bundle throws `registry-manifest-invalid`, saying what it is instead.
    public static func parse(_ bytes: [UInt8], contentType: String?, source: String) throws -> OCIBundleManifest {
        func bad(_ why: String) -> AirlockError {
            AirlockError(.verification, .registryManifestInvalid, "\(source) is not an Airlock bundle: \(why)")
        }
        let type = contentType.map { String($0.split(separator: ";").first ?? "").trimmingCharacters(in: .whitespaces) }
        if let type, !type.isEmpty, type != OCIArtifact.manifestMediaType {
            throw bad("the registry serves it as \(type), not as an OCI image manifest (\(OCIArtifact.manifestMediaType))")
        }
        guard bytes.count <= OCIArtifact.maxManifestBytes else {
            throw bad("its manifest is \(bytes.count) bytes, more than the \(OCIArtifact.maxManifestBytes) allowed")
        }
        let value: JSONValue
        do { value = try JSONParser.parse(bytes, maxValues: 10_000) } catch { throw bad("its manifest is not JSON (\(error))") }
        guard let o = value.objectValue else { throw bad("its manifest is not a JSON object") }
        guard o["schemaVersion"]?.unsignedInteger() == 2 else { throw bad("its manifest's schemaVersion is not 2") }
        if let m = o["mediaType"] {
            guard m.stringValue == OCIArtifact.manifestMediaType else {
                throw bad("its manifest's mediaType is \(show(m)), not \(OCIArtifact.manifestMediaType)")
            }
        }
        guard let configValue = o["config"] else { throw bad("its manifest has no config") }
        let config = try descriptor(configValue, what: "config", bad)
        guard config.mediaType == OCIArtifact.configMediaType else {
            throw bad("its config is \(config.mediaType), not \(OCIArtifact.configMediaType) (an image or another artifact)")
        }
        guard config.size <= UInt64(BundleLayout.maxManifestBytes) else { throw bad("its config is \(config.size) bytes, more than a bundle manifest may be") }
        guard let layers = o["layers"]?.arrayValue else { throw bad("its manifest has no layers") }
        guard layers.count == 1 else { throw bad("its manifest has \(layers.count) layers; a bundle is exactly one") }
        let layer = try descriptor(layers[0], what: "layer", bad)
        guard OCIArtifact.layerMediaTypes.contains(layer.mediaType) else {
            throw bad("its layer is \(layer.mediaType), not a bundle (\(OCIArtifact.layerMediaTypes.sorted().joined(separator: ", ")))")
        }
        var annotations: [String: String] = [:]
        if let a = o["annotations"]?.objectValue {
            for (k, v) in a { if let s = v.stringValue { annotations[k] = s } }
        }
        return OCIBundleManifest(config: config, layer: layer, annotations: annotations)
    }

    private static func show(_ v: JSONValue) -> String { String(CanonicalJSON.string(v).prefix(120)) }

    private static func descriptor(_ v: JSONValue, what: String, _ bad: (String) -> AirlockError) throws -> OCIDescriptor {
        guard let o = v.objectValue, let type = o["mediaType"]?.stringValue, let d = o["digest"]?.stringValue else {
            throw bad("its \(what) is not a descriptor with mediaType and digest")
        }
        guard let digest = SHA256Digest(prefixed: d), digest.prefixed == d else {
            throw bad("its \(what)'s digest \(d.prefix(80)) is not sha256: and 64 lowercase hex digits")
        }
        guard let size = o["size"]?.unsignedInteger() else { throw bad("its \(what) has no valid size") }
        var annotations: [String: String] = [:]
        if let a = o["annotations"]?.objectValue {
            for (k, v) in a { if let s = v.stringValue { annotations[k] = s } }
        }
        return OCIDescriptor(mediaType: type, digest: digest, size: size, annotations: annotations)
    }
}
