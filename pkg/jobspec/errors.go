package jobspec

import (
	"errors"
	"fmt"
)

// FieldError is a validation failure of one named field. Every error Parse, ValidJobID and
// GlobalsFromFields return is a *FieldError.
type FieldError struct {
	Field string // the field (or "job_id" for the key) as the writer spelled it
	Why   string // what is wrong, in words
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Why }

// Reason renders err as the STATE_DB reason of an invalid job: "invalid: <field>: <why>".
// An error that is not a *FieldError gives "invalid: " + err.Error(); nil gives "".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return ReasonInvalid + ": " + fe.Error()
	}
	return ReasonInvalid + ": " + err.Error()
}

// fieldErr builds a *FieldError with a formatted Why.
func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Why: fmt.Sprintf(format, args...)}
}

// firstErr returns the error whose field sorts first, so that a spec with several bad fields
// always reports the same one. Ties keep the earlier error.
func firstErr(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	first := errs[0]
	for _, e := range errs[1:] {
		if e.Field < first.Field {
			first = e
		}
	}
	return first
}

// quote renders a user-supplied value for an error message, cut short so that a huge value
// cannot bloat a STATE_DB reason.
func quote(v string) string {
	const max = 40
	if len(v) > max {
		return fmt.Sprintf("%q…", v[:max])
	}
	return fmt.Sprintf("%q", v)
}
