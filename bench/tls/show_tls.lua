-- wrk script: prints the body of the first response it gets (once per wrk thread), so a
-- run against corral's `GET /tls` shows the version and suite wrk itself negotiated.
local shown = false

function response(status, headers, body)
  if not shown then
    io.write(body)
    io.flush()
    shown = true
  end
end
