import Foundation
import Testing
import Yams

/// The fleet rollout of installer/ansible/ on eight inventory hosts that are separate site roots on
/// this machine (local connection), against docker-registry on loopback; and the Kubernetes
/// DaemonSet example of installer/README.md, parsed.
@Suite(.serialized) struct FleetTests {
    static let hosts = (1...8).map { "site\($0)" }
    static let playbooks = CLI.root + "/installer/ansible"

    /// The example release packed as 1.0.0 (`v1.airlock`) and 1.1.0 (`v2.airlock`), both pushed.
    static func releases(_ w: Workspace, _ registry: TestRegistry) throws -> (String, String) {
        _ = try w.key("vendor")
        #expect(try w.pack("v1.airlock").status == 0)
        let edit = try CLI.sh(
            """
            set -e
            cp -R release release-v2
            sed -i -e 's/^version: .*/version: 1.1.0/' -e 's/^sequence: .*/sequence: 2/' release-v2/airlock.yaml
            """, cwd: w.path)
        #expect(edit.status == 0, "\(edit.stderr)")
        let v2 = try CLI.run(
            ["pack", w.file("release-v2"), "--key", w.file("vendor.key"), "--out", w.file("v2.airlock")], env: ["SOURCE_DATE_EPOCH": "1767225600"])
        #expect(v2.status == 0, "\(v2.stderr)")
        for (file, tag) in [("v1.airlock", "1.0.0"), ("v2.airlock", "1.1.0")] {
            let pushed = try CLI.run(["push", w.file(file), "\(registry.host)/agents/example-agent:\(tag)", "--insecure"])
            #expect(pushed.status == 0, "\(pushed.stderr)")
        }
        return ("1.0.0-", "1.1.0-")
    }

    /// The inventory: every host a site root of its own; `failing` gets a health check that fails;
    /// `unreachable` is reached over ssh on a port where nothing listens.
    static func inventory(_ w: Workspace, failing: String? = nil, unreachable: String? = nil) throws -> String {
        var text = "airlock:\n  hosts:\n"
        for host in hosts {
            text += "    \(host):\n      airlock_root: \(w.file(host))\n      airlock_keys_dir: \(w.file(host + "-keys"))\n"
            if host == failing { text += "      airlock_check: \"echo the agent does not answer >&2; exit 3\"\n" }
            if host == unreachable {
                text += "      ansible_connection: ssh\n      ansible_host: 127.0.0.1\n      ansible_port: \(ServeTests.freePort())\n"
                text += "      airlock_connect_timeout: 3\n"
            }
        }
        text += """
              vars:
                ansible_connection: local
                ansible_python_interpreter: /usr/bin/python3
                airlock_bin: \(CLI.binary)
                airlock_manage_package: false
                airlock_trust_keys: [\(w.file("vendor.pub"))]
                airlock_perimeter: [kb.internal:443, orders.internal:8443, tickets.internal:443]
                airlock_registry_insecure: true
                airlock_registry_ca: \(w.file("registry-ca.pem"))
                airlock_become: false
                airlock_name: example-agent
                airlock_check: "test -f manifest.json && test -d payload/code"

            """
        if !FileManager.default.fileExists(atPath: w.file("registry-ca.pem")) {
            let ca = try CLI.sh(
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out registry-ca.pem -days 2 -subj /CN=site-ca 2>/dev/null",
                cwd: w.path)
            #expect(ca.status == 0, "\(ca.stderr)")
        }
        let path = w.file("inventory-\(failing ?? "ok")-\(unreachable ?? "all").yml")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func play(_ w: Workspace, _ playbook: String, inventory: String, _ vars: [String]) throws -> CLI.Result {
        let home = w.file("ansible-home")
        try FileManager.default.createDirectory(atPath: home + "/tmp", withIntermediateDirectories: true)
        return try CLI.run(
            ["-i", inventory, playbooks + "/" + playbook] + vars.flatMap { ["-e", $0] },
            env: [
                "ANSIBLE_HOME": home, "ANSIBLE_LOCAL_TEMP": home + "/tmp", "ANSIBLE_REMOTE_TEMP": home + "/tmp", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_FORCE_COLOR": "0",
            ],
            executable: "/usr/bin/ansible-playbook")
    }

    /// The release folder `current` names on a host ("1.0.0-9d842068d0cd").
    static func current(_ w: Workspace, _ host: String) -> String {
        ((try? FileManager.default.destinationOfSymbolicLink(atPath: w.file(host + "/example-agent/current"))) ?? "none")
            .replacingOccurrences(of: "releases/", with: "")
    }

    static func installed(_ w: Workspace, _ host: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: w.file(host + "/example-agent/releases"))) ?? []).sorted()
    }

    static func actions(_ w: Workspace, _ host: String) -> [String] {
        let text = (try? String(contentsOfFile: w.file(host + "/.history.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["action"] as? String
        }
    }

    static func changed(_ output: String, _ host: String) -> Int? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix(host + " ") && $0.contains("changed=") }),
            let range = line.range(of: "changed=")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    @Test func batchedRolloutStopsAndRollsBackTheFleetWhenTheThirdBatchFails() throws {
        let w = try Workspace()
        let registry = try TestRegistry()
        let (v1, v2) = try Self.releases(w, registry)
        let inventory = try Self.inventory(w)
        let ref = "oci://\(registry.host)/agents/example-agent"

        // Every host from nothing to 1.0.0, two hosts a batch.
        let first = try Self.play(w, "rollout.yml", inventory: inventory, ["airlock_ref=\(ref):1.0.0"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        for host in Self.hosts { #expect(Self.current(w, host).hasPrefix(v1), "\(host): \(Self.current(w, host))") }
        // The registry's CA is in every site's trust folder.
        for host in Self.hosts {
            #expect(FileManager.default.contentsEqual(atPath: w.file(host + "/.trust/registry-ca.pem"), andPath: w.file("registry-ca.pem")))
        }

        // 1.1.0 with a health check that fails on site5, in the third batch.
        let untouched = try ["site7", "site8"].map { try Data(contentsOf: URL(fileURLWithPath: w.file($0 + "/.history.jsonl"))) }
        let failing = try Self.inventory(w, failing: "site5")
        let failed = try Self.play(w, "rollout.yml", inventory: failing, ["airlock_ref=\(ref):1.1.0"])
        #expect(failed.status != 0)
        #expect(failed.stdout.contains("stopped: site5 failed"), "\(failed.stdout)")
        #expect(failed.stdout.contains("the agent does not answer"), "the host's reason is not shown")
        for host in Self.hosts { #expect(Self.current(w, host).hasPrefix(v1), "\(host) is on \(Self.current(w, host))") }
        // The first two batches, and site6 beside site5, went to 1.1.0 and were rolled back by the play.
        for host in ["site1", "site2", "site3", "site4", "site6"] {
            #expect(Self.actions(w, host).suffix(3) == ["install", "activate", "rollback"], "\(host): \(Self.actions(w, host))")
            #expect(Self.installed(w, host).contains { $0.hasPrefix(v2) })
        }
        // site5 switched itself back when its check failed.
        #expect(Self.actions(w, "site5").suffix(3) == ["install", "activate", "health-rollback"], "\(Self.actions(w, "site5"))")
        // The fourth batch never changed.
        for (host, before) in zip(["site7", "site8"], untouched) {
            #expect(try Data(contentsOf: URL(fileURLWithPath: w.file(host + "/.history.jsonl"))) == before, "\(host)'s history changed")
            #expect(Self.installed(w, host).allSatisfy { $0.hasPrefix(v1) }, "\(host): \(Self.installed(w, host))")
        }

        // With the check passing everywhere, every host ends on 1.1.0.
        let second = try Self.play(w, "rollout.yml", inventory: inventory, ["airlock_ref=\(ref):1.1.0"])
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        for host in Self.hosts { #expect(Self.current(w, host).hasPrefix(v2), "\(host) is on \(Self.current(w, host))") }

        // Again: nothing to do, nothing changes, not even a history line.
        let histories = try Self.hosts.map { try Data(contentsOf: URL(fileURLWithPath: w.file($0 + "/.history.jsonl"))) }
        let again = try Self.play(w, "rollout.yml", inventory: inventory, ["airlock_ref=\(ref):1.1.0"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        for (host, before) in zip(Self.hosts, histories) {
            #expect(Self.changed(again.stdout, host) == 0, "\(host) changed on a second run")
            #expect(try Data(contentsOf: URL(fileURLWithPath: w.file(host + "/.history.jsonl"))) == before, "\(host)'s history changed")
        }

        // The fleet rolled back by the rollback play.
        let back = try Self.play(w, "rollback.yml", inventory: inventory, ["airlock_name=example-agent"])
        #expect(back.status == 0, "\(back.stdout)\(back.stderr)")
        for host in Self.hosts { #expect(Self.current(w, host).hasPrefix(v1), "\(host) is on \(Self.current(w, host))") }
    }

    @Test func anUnreachableHostStopsTheRolloutAndEveryMovedHostIsRolledBack() throws {
        let w = try Workspace()
        let registry = try TestRegistry()
        let (v1, v2) = try Self.releases(w, registry)
        let ref = "oci://\(registry.host)/agents/example-agent"
        let first = try Self.play(w, "rollout.yml", inventory: try Self.inventory(w), ["airlock_ref=\(ref):1.0.0"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        // site4 (second batch) cannot be reached: site1-3 moved to 1.1.0 and must go back.
        let untouched = try ["site5", "site6", "site7", "site8"].map { try Data(contentsOf: URL(fileURLWithPath: w.file($0 + "/.history.jsonl"))) }
        let r = try Self.play(w, "rollout.yml", inventory: try Self.inventory(w, unreachable: "site4"), ["airlock_ref=\(ref):1.1.0"])
        #expect(r.status != 0)
        #expect(r.stdout.contains("stopped: site4 failed"), "\(r.stdout)")
        #expect(r.stdout.contains("Every host this play moved is back on the release it was on"), "\(r.stdout)")
        for host in Self.hosts { #expect(Self.current(w, host).hasPrefix(v1), "\(host) is on \(Self.current(w, host))") }
        for host in ["site1", "site2", "site3"] {
            #expect(Self.actions(w, host).suffix(2) == ["activate", "rollback"], "\(host): \(Self.actions(w, host))")
            #expect(Self.installed(w, host).contains { $0.hasPrefix(v2) })
        }
        #expect(!Self.installed(w, "site4").contains { $0.hasPrefix(v2) })
        for (host, before) in zip(["site5", "site6", "site7", "site8"], untouched) {
            #expect(try Data(contentsOf: URL(fileURLWithPath: w.file(host + "/.history.jsonl"))) == before, "\(host)'s history changed")
        }
    }

    @Test func aReferenceToAnotherReleaseNameActivatesNothing() throws {
        let w = try Workspace()
        let registry = try TestRegistry()
        _ = try Self.releases(w, registry)
        let inventory = try Self.inventory(w)
        let ref = "oci://\(registry.host)/agents/example-agent:1.0.0"
        let r = try Self.play(w, "rollout.yml", inventory: inventory, ["airlock_ref=\(ref)", "airlock_name=billing-agent", "airlock_batch=3"])
        #expect(r.status != 0)
        #expect(r.stdout.contains("holds a release named example-agent, not billing-agent"), "\(r.stdout)")
        for host in Self.hosts { #expect(Self.current(w, host) == "none") }
        // The first batch only: three hosts.
        #expect(Self.hosts.filter { !Self.installed(w, $0).isEmpty }.count == 3)
    }

    @Test func theKubernetesDaemonSetExampleParses() throws {
        let readme = try String(contentsOfFile: CLI.root + "/installer/README.md", encoding: .utf8)
        let blocks = readme.components(separatedBy: "```yaml\n").dropFirst().map { $0.components(separatedBy: "\n```")[0] }
        let daemonSets = try blocks.compactMap { try Yams.load(yaml: $0) as? [String: Any] }.filter { $0["kind"] as? String == "DaemonSet" }
        #expect(daemonSets.count == 1)
        guard let ds = daemonSets.first else { return }
        #expect(ds["apiVersion"] as? String == "apps/v1")
        let spec = ds["spec"] as? [String: Any] ?? [:]
        let selector = (spec["selector"] as? [String: Any])?["matchLabels"] as? [String: String] ?? [:]
        let template = spec["template"] as? [String: Any] ?? [:]
        let labels = (template["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }, "the selector does not match the pod's labels")
        let pod = template["spec"] as? [String: Any] ?? [:]
        let volumes = (pod["volumes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        let initContainers = pod["initContainers"] as? [[String: Any]] ?? []
        let containers = pod["containers"] as? [[String: Any]] ?? []
        #expect(initContainers.count == 1 && containers.count == 1)
        let install = initContainers.first?["command"] as? [String] ?? []
        #expect(install.starts(with: ["airlock", "install"]) && install.contains { $0.hasPrefix("oci://") } && install.contains("--activate"), "\(install)")
        let serve = containers.first?["command"] as? [String] ?? []
        #expect(serve.starts(with: ["airlock", "serve"]), "\(serve)")
        // Every mount names a volume the pod declares, and the site root is a host path.
        for container in initContainers + containers {
            for mount in container["volumeMounts"] as? [[String: Any]] ?? [] {
                #expect(volumes.contains(mount["name"] as? String ?? ""), "\(mount) names no volume")
            }
        }
        // The node's trust store is mounted read-only into every container.
        for container in initContainers + containers {
            let trust = (container["volumeMounts"] as? [[String: Any]] ?? []).first { $0["mountPath"] as? String == "/var/lib/airlock/.trust" }
            #expect(trust?["readOnly"] as? Bool == true, "\(container["name"] ?? "?") can write the trust store")
            let security = container["securityContext"] as? [String: Any] ?? [:]
            #expect(security["allowPrivilegeEscalation"] as? Bool == false)
            #expect(((security["capabilities"] as? [String: Any])?["drop"] as? [String]) == ["ALL"])
        }
        let siteRoot = (pod["volumes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "site-root" }
        #expect((siteRoot?["hostPath"] as? [String: Any])?["path"] as? String == "/var/lib/airlock")
        // Every option the commands give is one that command has.
        for command in [install, serve] {
            let help = try CLI.run([command[1], "--help"]).stdout
            for option in command where option.hasPrefix("--") {
                #expect(help.contains(option + " ") || help.contains(option + "\n"), "airlock \(command[1]) has no option \(option)")
            }
        }
    }
}
