import ClmntTestSupport
import Foundation
import Testing

/// Off-host copies against servers that misbehave: a part rejected once (a real proxy in front
/// of a real `rclone serve s3`), and TLS signed by a private CA (`--ca-file`).
@Suite(.serialized) struct OffHostFaultTests {
    @Test("an upload part the server rejects once is sent again: the backup succeeds and the object is whole")
    func partRejectedOnce() throws {
        let fixture = try FleetFixture()
        defer { fixture.remove() }
        let server = try RcloneS3Server()
        defer { server.stop() }
        let proxyPort = try RcloneS3Server.freePort()
        let log = fixture.root.path + "/proxy.log"
        // Forwards every request as it came (Host included, so the signature still holds), but
        // answers the first UploadPart with a 500.
        let script = """
            import http.client, http.server, sys
            rejected = False
            class Proxy(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def handle_one(self):
                    global rejected
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    if self.command == "PUT" and "partNumber=" in self.path and not rejected:
                        rejected = True
                        open(sys.argv[2], "a").write("rejected " + self.path + "\\n")
                        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers(); return
                    upstream = http.client.HTTPConnection("127.0.0.1", int(sys.argv[3]))
                    upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items(): upstream.putheader(name, value)
                    upstream.endheaders(body)
                    answer = upstream.getresponse(); data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("content-length", "transfer-encoding", "connection"): self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
                do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one
                def log_message(self, *args): pass
            http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy).serve_forever()
            """
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proxy.arguments = ["python3", "-c", script, String(proxyPort), log, String(server.port)]
        try proxy.run()
        // SIGKILL: the runner may ignore SIGTERM, and children inherit that.
        defer { kill(proxy.processIdentifier, SIGKILL); proxy.waitUntilExit() }
        // Ready when it accepts a connection.
        for _ in 0..<100 where (try? shell("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", \(proxyPort)), 1)'"))?.status != 0 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        var environment = server.clientEnvironment
        environment["AWS_ENDPOINT_URL"] = "http://127.0.0.1:\(proxyPort)"
        let backup = try clmnt(["fleet", "backup", "-d", fixture.baseDir, "--compress", "zstd", "--to", "s3://\(RcloneS3Server.bucket)/p",
                                "--host", "h", "--backup-dir", fixture.root.path + "/state", "-q"], environment: environment, timeout: 120)
        #expect(backup.status == 0, "\(backup.output)")
        let rejections = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(rejections.split(separator: "\n").count == 1 && rejections.contains("partNumber=1"), "\(rejections)")
        // boto3 reads the object whole, straight from the server: a valid archive, manifest first.
        let first = try server.boto3("""
            import io, tarfile, subprocess
            key = s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"]
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            names = subprocess.run(["tar", "-t", "--zstd"], input=data, capture_output=True, check=True).stdout.decode().split()
            print(names[0], len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])))
            """)
        #expect(first == "manifest.json 0", "\(first)")
    }

    @Test("TLS signed by a private CA: refused without --ca-file, trusted with it")
    func privateCertificateAuthority() throws {
        let fixture = try FleetFixture()
        defer { fixture.remove() }
        let pki = fixture.root.path + "/pki"
        try FileManager.default.createDirectory(atPath: pki, withIntermediateDirectories: true)
        let made = try shell("""
            cd '\(pki)' && \
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=clmnt test CA' 2>&1 && \
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>&1 && \
            printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && \
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>&1
            """)
        #expect(made.status == 0, "\(made.output)")
        let server = try RcloneS3Server(tls: (cert: pki + "/server.pem", key: pki + "/server.key"))
        defer { server.stop() }
        let url = "s3://\(RcloneS3Server.bucket)/p"
        let untrusted = try clmnt(["fleet", "backup", "-d", fixture.baseDir, "--to", url, "--backup-dir", fixture.root.path + "/s"],
                                  environment: server.clientEnvironment, timeout: 120)
        #expect(untrusted.status == 1, "\(untrusted.output)")
        #expect(untrusted.output.lowercased().contains("certificate") || untrusted.output.contains("TLS") || untrusted.output.contains("ssl"),
                "\(untrusted.output)")
        let trusted = try clmnt(["fleet", "backup", "-d", fixture.baseDir, "--to", url, "--ca-file", pki + "/ca.pem",
                                 "--backup-dir", fixture.root.path + "/s", "-q"], environment: server.clientEnvironment, timeout: 120)
        #expect(trusted.status == 0, "\(trusted.output)")
        let listed = try clmnt(["fleet", "list-backups", "--from", url, "--ca-file", pki + "/ca.pem", "-q"], environment: server.clientEnvironment)
        #expect(listed.status == 0 && listed.output.contains(".tar.gz"), "\(listed.output)")
    }
}
