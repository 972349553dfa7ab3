import AirlockFormat

extension BundleSummary {
    /// The bundle's grants: its `tools/tools.json` (read from the payload and checked against
    /// the manifest's hash) and its model endpoint. Nil when a delta omits the tool manifest.
    public func grants() throws -> Grants? {
        guard let entry = manifest.files.first(where: { $0.path == ToolManifest.path }) else { return try Grants(tools: nil, manifest: manifest) }
        let reader = try BundleReader(path: path)
        _ = try reader.readManifest()
        _ = try reader.readSignatures()
        try reader.readSums(for: manifest)
        for f in manifest.files {
            if reader.isOmitted(f) {
                if f.path == entry.path { return nil }
                reader.skipOmitted(f)
                continue
            }
            if f.path != entry.path {
                try reader.readPayload(f)
                continue
            }
            guard f.size <= UInt64(ToolManifest.maxBytes) else {
                throw AirlockError(.invalidRelease, .toolsInvalid, "\(path): tools/tools.json is larger than \(ToolManifest.maxBytes >> 20) MiB")
            }
            var bytes: [UInt8] = []
            try reader.readPayload(f) { bytes.append(contentsOf: $0) }
            return try Grants(tools: try ToolManifest.parse(bytes, source: "\(path): tools/tools.json", hostile: true), manifest: manifest)
        }
        return nil
    }
}
