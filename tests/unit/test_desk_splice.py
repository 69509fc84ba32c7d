"""A transcript frame is built in the desk store's worker, its Markdown JSON-escaped a
chunk at a time (issue 18: no 2 MB escape in one C call holding the loop): the frame
must decode to exactly what encoding the payload whole gives."""

from __future__ import annotations

import json

from hitl_desktop.core.protocol import Transcript, decode_host, encode
from hitl_desktop.host.desk import _ESCAPE_CHUNK, splice_text


def test_a_spliced_transcript_is_the_encoded_one() -> None:
    tricky = 'a "quote" \\ back\nslash\t\x00\x1f é 漢字 😀 </script> \u2028'
    texts = ["", "plain", tricky, (tricky * 9000)[:3 * _ESCAPE_CHUNK + 7],
             "😀" * (_ESCAPE_CHUNK + 3), "x" * (_ESCAPE_CHUNK - 1) + '"' + "y" * 5]
    for text in texts:
        whole = encode("transcript", Transcript(session_id="s_1", audience="internal",
                                                markdown=text), session="s_1", ref="r1",
                       msg_id="m1", ts=1.0)
        head = encode("transcript", Transcript(session_id="s_1", audience="internal",
                                               markdown=""), session="s_1", ref="r1",
                      msg_id="m1", ts=1.0)
        spliced = splice_text(head, '"markdown":""', "markdown", text)
        assert json.loads(spliced) == json.loads(whole)
        assert spliced == whole  # byte for byte, too
        _env, payload, _ = decode_host(spliced)
        assert isinstance(payload, Transcript) and payload.markdown == text
