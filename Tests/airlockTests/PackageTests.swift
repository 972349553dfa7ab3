import Foundation
import Testing

/// Airlock as a Debian package: the `.deb` that `make deb` built (`make test` builds it first and
/// names it in AIRLOCK_TEST_DEB), checked by lintian, installed with dpkg into a throwaway root,
/// its systemd units checked by systemd-analyze, and served from a signed apt mirror.
@Suite(.serialized) struct PackageTests {
    /// The package under test, or a recorded failure that says how to build it.
    static func deb() -> String? {
        guard let path = ProcessInfo.processInfo.environment["AIRLOCK_TEST_DEB"], FileManager.default.fileExists(atPath: path) else {
            Issue.record("no package to test: run `make test` (it builds the package with `make deb` and names it in AIRLOCK_TEST_DEB)")
            return nil
        }
        return path
    }

    /// A throwaway dpkg root whose database holds the host's records of `packages` only (so that
    /// dpkg checks the package's Depends against them), with the host's unit files for systemd-analyze.
    static func throwawayRoot(_ w: Workspace, packages: [String]) throws -> String {
        let root = w.file("root-\(UUID().uuidString.prefix(6))")
        let r = try CLI.sh(
            """
            set -e
            mkdir -p '\(root)/var/lib/dpkg/info' '\(root)/var/lib/dpkg/updates'
            touch '\(root)/var/lib/dpkg/available' '\(root)/var/lib/dpkg/status'
            for p in \(packages.joined(separator: " ")); do
                dpkg-query -s "$p" >> '\(root)/var/lib/dpkg/status'
                echo >> '\(root)/var/lib/dpkg/status'
                for f in /var/lib/dpkg/info/"$p".list /var/lib/dpkg/info/"$p":*.list; do
                    if [ -e "$f" ]; then cp "$f" '\(root)/var/lib/dpkg/info/'; fi
                done
            done
            """)
        #expect(r.status == 0, "\(r.stderr)")
        return root
    }

    /// The package names in the package's Depends.
    static func depends(_ deb: String) throws -> [String] {
        let r = try CLI.run(["-f", deb, "Depends"], executable: "dpkg-deb")
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: ",").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    @Test func lintianReportsNoErrors() throws {
        guard let deb = Self.deb() else { return }
        let r = try CLI.run(["--fail-on", "error", deb], executable: "lintian")
        #expect(r.status == 0, "lintian: \(r.stdout)\(r.stderr)")
        #expect(!r.stdout.contains("E: "), "lintian: \(r.stdout)")
        let info = try CLI.run(["-f", deb, "Package", "Version", "Architecture"], executable: "dpkg-deb")
        #expect(info.stdout.contains("Package: airlock"))
        let version = try CLI.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(info.stdout.contains("Version: \(version)"), "\(info.stdout)")
    }

    @Test func installsWithDpkgIntoAThrowawayRootAndVerifiesABundle() throws {
        guard let deb = Self.deb() else { return }
        let w = try Workspace()
        _ = try w.key("vendor")
        #expect(try w.pack("v1.airlock").status == 0)
        let depends = try Self.depends(deb)
        #expect(depends.contains("libarchive13") && depends.contains("libssl3"), "Depends: \(depends)")

        // Without libarchive13 in its database, dpkg refuses the package: Depends is real.
        let bare = try Self.throwawayRoot(w, packages: depends.filter { $0 != "libarchive13" })
        let refused = try CLI.run(["--root=\(bare)", "--force-script-chrootless", "-i", deb], executable: "dpkg")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("libarchive13"), "\(refused.stderr)")

        let root = try Self.throwawayRoot(w, packages: depends)
        // (--force-script-chrootless: the maintainer scripts run without a chroot, with DPKG_ROOT set,
        // and touch nothing of this machine's systemd.)
        let installed = try CLI.run(["--root=\(root)", "--force-script-chrootless", "-i", deb], executable: "dpkg")
        #expect(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
        #expect(!installed.stderr.contains("warning"), "\(installed.stderr)")
        let binary = root + "/usr/bin/airlock"
        // Every shared library the binary needs belongs to a package Depends names.
        let needed = try CLI.sh("readelf -d '\(binary)' 2>/dev/null | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'")
        let sonames = needed.stdout.split(separator: "\n").map(String.init)
        #expect(sonames.contains("libarchive.so.13") && sonames.contains("libssl.so.3"), "\(sonames)")
        for soname in sonames {
            let owner = try CLI.sh("dpkg -S '*/\(soname)' | head -1 | cut -d: -f1")
            #expect(
                depends.contains(owner.stdout.trimmingCharacters(in: .whitespacesAndNewlines)),
                "\(soname) comes from \(owner.stdout), not in Depends \(depends)")
        }

        // The binary carries its Swift runtime and no run path of its own.
        let ldd = try CLI.run([binary], executable: "ldd")
        #expect(!ldd.stdout.contains("libswift") && !ldd.stdout.contains("not found"), "\(ldd.stdout)")
        let dynamic = try CLI.run(["-d", binary], executable: "readelf")
        #expect(!dynamic.stdout.contains("RUNPATH") && !dynamic.stdout.contains("RPATH"), "\(dynamic.stdout)")

        let version = try CLI.run(["--version"], executable: binary)
        #expect(version.status == 0)
        #expect(
            version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try CLI.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let verified = try CLI.run(["verify", w.file("v1.airlock"), "--trust", w.file("trust")], executable: binary)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("example-agent"), "\(verified.stdout)")
        // ... and refuses a bundle one byte of which changed.
        let r = try CLI.sh(
            "cp '\(w.file("v1.airlock"))' '\(w.file("bad.airlock"))' && printf x | dd of='\(w.file("bad.airlock"))' bs=1 seek=4000 conv=notrunc status=none")
        #expect(r.status == 0)
        #expect(try CLI.run(["verify", w.file("bad.airlock"), "--trust", w.file("trust")], executable: binary).status == 1)
        // The auditor's script, as packaged.
        let audit = try CLI.run([w.file("v1.airlock"), w.file("vendor.pub")], executable: root + "/usr/bin/airlock-audit-bundle")
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")

        // Man pages, completions and units are where Debian's tools look for them.
        let files = try CLI.run(["--root=\(root)", "-L", "airlock"], executable: "dpkg").stdout.split(separator: "\n").map(String.init)
        for expected in [
            "/usr/share/man/man1/airlock.1.gz", "/usr/share/man/man1/airlock.install.1.gz", "/usr/share/man/man1/airlock.trust.add.1.gz",
            "/usr/share/man/man1/airlock-audit-bundle.1.gz", "/usr/share/bash-completion/completions/airlock",
            "/usr/share/zsh/vendor-completions/_airlock", "/usr/share/fish/vendor_completions.d/airlock.fish",
            "/lib/systemd/system/airlock-serve@.service", "/lib/systemd/system/airlock-gc.service", "/lib/systemd/system/airlock-gc.timer",
            "/usr/share/doc/airlock/copyright", "/usr/share/doc/airlock/changelog.gz", "/usr/share/doc/airlock/fleet.md",
        ] {
            #expect(files.contains(expected), "the package lacks \(expected)")
        }
        let page = try CLI.sh("gzip -dc '\(root)/usr/share/man/man1/airlock.install.1.gz'")
        #expect(page.stdout.contains(".Nm airlock.install") && page.stdout.contains("--activate"), "\(page.stdout.prefix(400))")
        let completion = try CLI.sh("bash -c 'source \(root)/usr/share/bash-completion/completions/airlock && complete -p airlock'")
        #expect(completion.status == 0 && completion.stdout.contains("airlock"), "\(completion.stderr)")

        // The units: systemd-analyze checks them against the installed binary.
        let units = try CLI.sh(
            """
            cp -rn /lib/systemd/system/. '\(root)/lib/systemd/system/' 2>/dev/null
            cd '\(root)' && systemd-analyze verify --man=no --root='\(root)' airlock-serve@example-agent.service airlock-gc.service airlock-gc.timer
            """)
        #expect(units.status == 0 && units.stderr.isEmpty, "systemd-analyze: \(units.stderr)")

        // Removal takes every file it installed.
        #expect(try CLI.run(["--root=\(root)", "--force-script-chrootless", "-P", "airlock"], executable: "dpkg").status == 0)
        #expect(!FileManager.default.fileExists(atPath: binary))
    }

    @Test func servedFromASignedAptMirrorThroughAFileSource() throws {
        guard let deb = Self.deb() else { return }
        let w = try Workspace()
        let mirror = w.file("mirror")
        let apt = w.file("apt")
        // The mirror as installer/README.md builds it: reprepro, signed with the site's archive key.
        let built = try CLI.sh(
            """
            set -e
            export GNUPGHOME='\(w.file("gnupg"))'
            mkdir -m 0700 "$GNUPGHOME"
            gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key 'Site archive <archive@site.invalid>' ed25519 sign never 2>/dev/null
            gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key 'Someone else <other@site.invalid>' ed25519 sign never 2>/dev/null
            fpr=$(gpg --list-keys --with-colons 'Site archive' | awk -F: '/^fpr/ {print $10; exit}')
            mkdir -p '\(mirror)/conf'
            cat > '\(mirror)/conf/distributions' <<EOF
            Origin: site
            Label: site
            Codename: airlock
            Architectures: $(dpkg --print-architecture)
            Components: main
            Description: Airlock, mirrored inside the site
            SignWith: $fpr
            EOF
            reprepro --silent -b '\(mirror)' includedeb airlock '\(deb)'
            gpg --export "$fpr" > '\(w.file("site-archive.gpg"))'
            gpg --export 'Someone else' > '\(w.file("other.gpg"))'
            chmod -R a+rX '\(w.path)'
            """)
        #expect(built.status == 0, "\(built.stderr)")
        #expect(FileManager.default.fileExists(atPath: mirror + "/dists/airlock/InRelease"))

        // An apt client of its own (no change to this machine's apt), with a file: source.
        func aptRun(_ tool: String, _ args: [String], keyring: String) throws -> CLI.Result {
            try CLI.sh(
                """
                set -e
                mkdir -p '\(apt)/etc/apt.conf.d' '\(apt)/etc/preferences.d' '\(apt)/etc/sources.list.d' '\(apt)/lists/partial' '\(apt)/cache/archives/partial'
                touch '\(apt)/status'
                echo 'deb [signed-by=\(keyring)] file:\(mirror) airlock main' > '\(apt)/etc/sources.list'
                cd '\(apt)' && \(tool) -q -o Dir::Etc='\(apt)/etc' -o Dir::State::Lists='\(apt)/lists' -o Dir::State::status='\(apt)/status' \
                    -o Dir::Cache='\(apt)/cache' -o Debug::NoLocking=1 -o APT::Sandbox::User=root \(args.joined(separator: " "))
                """)
        }
        // Signed by a key the client was not given: apt refuses the mirror.
        let stranger = try aptRun("apt-get", ["update"], keyring: w.file("other.gpg"))
        #expect(
            stranger.stdout.contains("NO_PUBKEY") || stranger.stderr.contains("NO_PUBKEY") || stranger.stderr.contains("not signed"),
            "\(stranger.stdout)\(stranger.stderr)")
        // ... and knows no airlock from it (apt-cache says nothing of a package it does not know).
        let unknown = try aptRun("apt-cache", ["policy", "airlock"], keyring: w.file("other.gpg"))
        #expect(unknown.status == 0 && !unknown.stdout.contains("Candidate:"), "\(unknown.stdout)\(unknown.stderr)")

        let update = try aptRun("apt-get", ["update"], keyring: w.file("site-archive.gpg"))
        #expect(update.status == 0 && !update.stderr.contains("W:") && !update.stderr.contains("E:"), "\(update.stdout)\(update.stderr)")
        let version = try CLI.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let policy = try aptRun("apt-cache", ["policy", "airlock"], keyring: w.file("site-archive.gpg"))
        #expect(policy.stdout.contains("Candidate: \(version)"), "\(policy.stdout)\(policy.stderr)")
        let download = try aptRun("apt-get", ["download", "airlock"], keyring: w.file("site-archive.gpg"))
        #expect(download.status == 0, "\(download.stderr)")
        let same = try CLI.sh("cmp '\(deb)' '\(apt)'/airlock_*.deb")
        #expect(same.status == 0, "the package apt fetched differs from the one built: \(same.stdout)\(same.stderr)")
    }
}
