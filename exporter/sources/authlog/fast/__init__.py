"""The auth-log hot path for whole chunks of text: `fastscan` (one regex) and `linescan` (string searches,
compiled by mypyc). Both give the general path's ops (framing, classify, ops.op_of) for every line, and
both leave what a recognised line means to `..rules`, as classify does."""
