import CArchive
import Foundation

extension ArchiveReader {
    /// The raw file-type and permission bits of the current entry's header
    /// (what `EntryMetadata.mode` leaves out).
    var currentEntryFileType: UInt32 { UInt32(archive_entry_filetype(entry.pointer)) }

    /// The current entry's size as its header gives it (hard links included).
    var currentEntryHeaderSize: Int64 { archive_entry_size(entry.pointer) }
}

/// What `DiskWriter` needs of a reader positioned on an entry.
protocol TarEntrySource: AnyObject {
    var handle: OpaquePointer { get }
    var entry: ArchiveEntry { get }
    var path: String { get }
}

extension ArchiveReader: TarEntrySource {}
