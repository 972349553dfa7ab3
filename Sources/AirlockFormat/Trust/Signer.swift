/// Detached signatures for a second signer.
public enum Signer {
    /// Signs the exact manifest bytes of the bundle at `bundle` with `key`. The manifest is parsed
    /// strictly first, so nobody signs bytes that are not a valid manifest.
    public static func sign(bundle: String, key: PrivateKey) throws -> (signature: [UInt8], summary: BundleSummary) {
        let summary = try BundleSummary.read(path: bundle)
        return (try key.sign(summary.manifestBytes), summary)
    }

    /// Signs as `sign` does and writes the raw signature to `output` atomically.
    public static func writeDetached(bundle: String, key: PrivateKey, to output: String) throws -> BundleSummary {
        let (sig, summary) = try sign(bundle: bundle, key: key)
        try FileIO.writeAtomically(output, sig, mode: 0o644)
        return summary
    }
}
