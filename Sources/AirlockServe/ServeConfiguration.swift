import AirlockKit

/// What `airlock serve` is asked to do: which site, which names, where to listen.
public struct ServeConfiguration: Sendable {
    /// The site whose releases it runs.
    public var site: Site
    /// The release names it manages (each routed under `/<name>/`).
    public var names: [String]
    /// The address it listens on: loopback unless the admin says otherwise.
    public var host = "127.0.0.1"
    /// The port it listens on.
    public var port = 8470
    /// The largest request body it forwards, in bytes.
    public var maxBodyBytes = 1 << 20
    /// The event-loop threads that read, route and forward requests; nil: one per core.
    public var threads: Int?
    /// The bearer token its control endpoints require (`ServeToken`); nil refuses them all.
    public var token: String?

    /// A configuration for `names` on `site`, listening on 127.0.0.1:8470.
    public init(site: Site, names: [String]) {
        self.site = site
        self.names = names
    }
}
