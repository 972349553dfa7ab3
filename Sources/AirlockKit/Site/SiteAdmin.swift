import AirlockFormat
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The site's administration besides install, activate and rollback, one job a file:
/// `status` (SiteStatus.swift), `audit` (Audit.swift), `setPinned` and `remove`
/// (ReleaseRemoval.swift), `gc` (GarbageCollection.swift), and the trust store's keys and
/// perimeter (TrustAdmin.swift). Reading jobs take no lock and write nothing; writing jobs run
/// under the site lock and write the history.
public enum SiteAdmin {}
