// Package auditlog follows a MariaDB server_audit log file (the plugin
// Aurora MySQL's activity streams are fed by) and turns each line into a DAS
// event, without loss or duplicates across rotation and restarts.
//
// Parsing. ParseLine reads the plugin's line exactly:
// "YYYYMMDD HH:MM:SS,serverhost,username,host,connectionid,queryid,operation,database,object,retcode"
// in the server's local time (Options.Location; das serve's
// audit_time_zone); Aurora's epoch-microsecond
// timestamp is accepted too; MariaDB 12's "host:port" is split (an
// unbracketed IPv6 address is ambiguous and left whole); columns after the
// tenth (the RDS fork) are kept in Extra "dasAuditExtra". A quoted object is
// unescaped (\' \\ \n \r \t \b \f; older versions wrote whitespace as
// spaces, which needs nothing). Table events (READ, WRITE, CREATE, ALTER,
// DROP, RENAME) become AUX events (substatementId 2, commandText the table as
// written, objectName db.table; RENAME "old|db.new" lists both). QUERY and its
// QUERY_* variants become QUERY; CHANGE_USER (and CHANGEUSER) becomes
// CHANGEUSER; PROXY_CONNECT becomes CONNECT; an operation this package does
// not know is kept verbatim. netProtocol is SOCKET when the host is
// "localhost" with no port (a unix socket login; with name resolution on, a
// TCP login from 127.0.0.1 looks the same), TCP otherwise.
//
// Every event carries Extra "dasSource":"server_audit" and "dasAuditPos",
// the position just after its line: "<dev>:<inode>:<born>:<offset>", where
// born is the file's birth time in ns (0 where the file system has none):
// the plugin deletes its oldest rotation and creates the new file at once,
// so ext4 hands the new file the inode just freed. The plugin cuts a query
// where its escaped text reaches server_audit_query_log_limit
// (Options.QueryLogLimit, default 1024), or one byte short of it before a
// two-byte escape: a query written (escaped) at least the limit less one
// bytes long, or whose closing quote is missing, may have been cut:
// Extra "dasTruncated":true (an inference: a whole query of that length is
// flagged too). Invalid UTF-8 in the SQL is flagged "dasInvalidUTF8" (the
// encoder writes U+FFFD). Passwords: the plugin masks them itself; the
// pipeline's redact.SQL runs on commandText as for the proxy.
//
// A line that is not a record is never dropped: it becomes an event with
// command UNPARSED, errorMessage saying why, and the line in commandText
// (Extra "dasRawBase64" instead when it is not UTF-8), its passwords masked
// as redact.SQL masks SQL, in the escaped quoted SQL of a line shaped like a
// record too; counted in Stats.Unparsed. Problems of the tailer itself
// (rotation outran the reader, truncation, a checkpoint that does not match
// or cannot be written, a path that is a directory, a symlink or unreadable)
// are DAS_WARNING events with errorMessage and Extra "dasWarning" naming the
// kind, and logged, once each time the condition arises (a symlink is never
// followed: it could lead anywhere); the tailer keeps its position and
// retries.
//
// Following. The Tailer polls (Options.Poll, 50 ms); a reader caught up
// with an idle log sleeps up to five polls, and the watcher, which keeps
// looking every poll, wakes it when the log grows. It holds the file it
// reads open, so a file renamed or deleted under it is still read to its
// end. When Path names another file it reads once more (lines written just
// before the rename), then moves to the next file in creation order. A
// watcher goroutine scans Path, Path.1, Path.2, ... (numbers zero-padded as
// the plugin does for server_audit_file_rotations >= 10), also while the
// reader waits on the sink, and records the order in which files appear.
// A rotation always puts a new file at Path, so while Path names the file
// the last full scan found there, one lstat per poll stands in for the
// scan, for up to a second. Where the file system keeps birth times, they
// decide the order (files are only created at Path), since two racing
// rotations of the plugin (server_audit_file_rotate_now during a size
// rotation, MariaDB 10.11) can rename an old file between new ones, or
// past a gap in the numbers, where a listing of the directory finds it.
// A newer file that disappeared before it was read is lost: counted
// (Stats.LostFiles, LostBytes: the size last seen, a lower bound; a file
// created and deleted between two scans is not seen at all) and reported.
// A file that shrinks was truncated: read again from 0, with a warning.
// Lines longer than Options.MaxLine (1 MiB) are cut to it, flagged
// "dasLineCut" and "dasTruncated", and their position is still the end of
// the full line.
// Lag: Stats.LagBytes (unread bytes in the current and newer files) and
// LagSeconds (now - time of the last line read; 0 when caught up).
//
// Exactly once. The reader hands the Sink the lines of each read (at most
// 256) as one batch, and the Sink acks a batch once all its events are
// durable, never when one of them was lost. The tailer checkpoints (at most every CheckpointInterval, 1 s, and when Run ends)
// the end of the longest gap-free prefix of acknowledged batches: device,
// inode, birth time, offset and a CRC-32C digest of the line before the
// offset, written to a temporary file, fsynced, renamed and the directory
// fsynced (mode 0600). On Run it resumes from the checkpoint if the file is
// still there and the digest matches; otherwise (the file is gone, or its
// inode holds other content) it warns and starts from the oldest file still
// there, preferring a duplicate to a loss.
//
// Events acknowledged after the last checkpoint write (a crash in between)
// would be read again: the stream itself is the authority for those. The
// caller recovers the "dasAuditPos" of the last events in its durable stream
// (PositionOf) and passes them as Options.DurableFloor; a floor position in
// one of this log's files that lies after the checkpoint wins over it. So
// after kill -9 nothing acknowledged is repeated and nothing unacknowledged
// is skipped. das serve reads the newest records back from its sink, the
// local log, the stream's Kafka partition or its Kinesis shard alike, and
// only up to the first record missing from the chain; when it cannot read
// them back (bounded by a timeout) the checkpoint alone decides, and up to a
// checkpoint interval of lines may repeat. DAS_WARNING events carry no
// position and may repeat.
package auditlog
