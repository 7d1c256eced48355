package jobspec

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SessionPrefix starts the name of every MIRROR_SESSION telegend owns; anything with this
// prefix that no live job owns is an orphan.
const SessionPrefix = "telegen_"

// maxJobIDLen is the longest job id (the key of TELEGEN_JOB).
const maxJobIDLen = 64

// ValidJobID checks id against ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$; the error is a
// *FieldError on "job_id".
func ValidJobID(id string) error {
	if !validName(id, "_.-", maxJobIDLen) {
		return fieldErr(FieldJobID, "must be 1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit, not %s", quote(id))
	}
	return nil
}

// validName reports whether s is 1..max bytes long, starts with an ASCII letter or digit and
// continues with letters, digits or bytes of extra.
func validName(s, extra string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || (i > 0 && strings.IndexByte(extra, c) >= 0) {
			continue
		}
		return false
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// MirrorSessionName derives the MIRROR_SESSION name of a job. SONiC limits session names to
// [a-zA-Z0-9][-a-zA-Z0-9_]{0,31}, so the result is SessionPrefix plus at most 24 characters:
//
//   - an id of at most 24 characters made only of letters, digits, '_' and '-' is used as is
//     ("telegen_job1");
//   - any other id (longer, or containing '.' or other characters SONiC forbids) becomes its
//     first 15 characters with each forbidden character mapped to '-', then '-' and 8 hex
//     digits of the SHA-256 of the whole id (the UUID "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"
//     gives "telegen_3f2b8c1e-9a4d-4-3a416e8a").
//
// The name is stable across restarts, and two distinct ids share a name only by a hash
// collision: "a.b" and "a-b" differ, because only the second is used as is.
func MirrorSessionName(jobID string) string {
	const room = 32 - len(SessionPrefix) // 24
	if len(jobID) > 0 && len(jobID) <= room && validName(jobID, "_-", room) {
		return SessionPrefix + jobID
	}
	head := []byte(jobID)
	if len(head) > 15 {
		head = head[:15]
	}
	for i, c := range head {
		if !isAlnum(c) && c != '_' && c != '-' {
			head[i] = '-'
		}
	}
	sum := sha256.Sum256([]byte(jobID))
	return SessionPrefix + string(head) + "-" + hex.EncodeToString(sum[:4])
}
