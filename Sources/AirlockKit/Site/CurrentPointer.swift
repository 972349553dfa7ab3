import AirlockFormat

#if canImport(Glibc)
import Glibc
#endif

/// The `current` pointer of a release name and its journal (site-layout.md, ADR 0003): the one
/// place where `<name>/current` moves.
///
/// A switch is journaled in the name's state (`NameState`): the new activation stack is saved
/// as `pending` before the pointer moves and as `stack` after it, so that whichever of the two
/// has `current` on top is right after a crash at any instant (`NameState.reconciled`). The
/// pointer itself moves in one `rename`: a new relative symlink, made under a unique name
/// beside it, replaces `current`, and the folder is flushed.
enum CurrentPointer {
    /// Moves `current` to the top of `newStack` (nothing when it is empty), journaled: the new
    /// stack is saved as pending before the pointer moves and as the stack after it.
    static func transition(site: Site, name: String, state: inout NameState, to newStack: [String], steps: (String, String)) throws {
        state.pending = newStack
        try state.save(site, name)
        Sys.step(steps.0)
        if let top = newStack.last {
            try switchPointer(site: site, name: name, to: top)
        } else {
            _ = Sys.unlink(site.currentLink(name))
            try FileIO.fsyncPath(site.nameDirectory(name))
        }
        Sys.step(steps.1)
        state.stack = newStack
        state.pending = nil
        try state.save(site, name)
    }

    /// The pointer switch: a new relative symlink under a unique name, renamed over `current`,
    /// then the folder fsynced. Never copies, never deletes first.
    static func switchPointer(site: Site, name: String, to dir: String) throws {
        guard FileIO.isDirectory(site.releaseDirectory(name, dir)) else {
            throw AirlockError(.usage, .releaseUnknown, "\(name) has no installed release \(dir)")
        }
        let tmp = site.path(name, SiteLayout.pointerTemporaryPrefix + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard Sys.symlink(SiteLayout.releases + "/" + dir, tmp) == 0 else {
            throw AirlockError.io(errno == ENOSPC ? .diskFull : .writeFailed, "cannot create the new pointer \(tmp)", errno: errno)
        }
        guard Sys.rename(tmp, site.currentLink(name)) == 0 else {
            let err = errno
            _ = Sys.unlink(tmp)
            throw AirlockError.io(.writeFailed, "cannot switch \(site.currentLink(name))", errno: err)
        }
        try FileIO.fsyncPath(site.nameDirectory(name))
    }
}
