package accounts

import (
	"context"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Palpo sends no email or SMS and trusts no identity server, so no account
// has a third-party identifier (3PID) and none can be added: /capabilities
// says m.3pid_changes is disabled, and the 3PID endpoints check their input
// and then give the spec's refusal for each purpose.

// ThreepidPurpose is why a client asks for a 3PID validation token.
type ThreepidPurpose int

// The purposes of the three families of */requestToken endpoints.
const (
	ThreepidForRegistration  ThreepidPurpose = iota // /register/*/requestToken
	ThreepidForPasswordReset                        // /account/password/*/requestToken
	ThreepidForAccount                              // /account/3pid/*/requestToken
)

// 3PID media.
const (
	MediumEmail  = "email"
	MediumMSISDN = "msisdn"
)

// MServerNotTrusted is the spec's answer when a request names an identity
// server this server does not work with (Palpo works with none).
var MServerNotTrusted = mautrix.RespError{ErrCode: "M_SERVER_NOT_TRUSTED", StatusCode: http.StatusBadRequest}

// ThreepidValidation is the body of a */requestToken request.
type ThreepidValidation struct {
	Medium       string // MediumEmail or MediumMSISDN
	ClientSecret string
	Email        string
	Country      string
	PhoneNumber  string
	SendAttempt  *int64
}

// RequestThreepidValidation answers a */requestToken request: the input is
// checked as the spec requires, then refused, since nothing can be sent.
// Registration and password reset get 403 M_THREEPID_DENIED (the one refusal
// those endpoints define); adding a 3PID to an account gets 400
// M_THREEPID_MEDIUM_NOT_SUPPORTED, which that endpoint defines for exactly
// this case.
func (s *Service) RequestThreepidValidation(purpose ThreepidPurpose, v ThreepidValidation) error {
	if err := ValidateClientSecret(v.ClientSecret); err != nil {
		return err
	}
	switch v.Medium {
	case MediumEmail:
		if v.Email == "" {
			return MMissingParam.WithMessage("Missing email")
		}
		if !plausibleEmail(v.Email) {
			return mautrix.MInvalidParam.WithMessage("email is not a valid email address")
		}
	case MediumMSISDN:
		if v.Country == "" || v.PhoneNumber == "" {
			return MMissingParam.WithMessage("Missing country or phone_number")
		}
		if !isCountryCode(v.Country) {
			return mautrix.MInvalidParam.WithMessage("country must be a two-letter ISO 3166-1 alpha-2 code such as \"GB\"")
		}
		if !plausiblePhoneNumber(v.PhoneNumber) {
			return mautrix.MInvalidParam.WithMessage("phone_number is not a valid phone number")
		}
	default:
		return mautrix.MInvalidParam.WithMessage("medium must be email or msisdn")
	}
	if v.SendAttempt == nil {
		return MMissingParam.WithMessage("Missing send_attempt")
	}
	switch purpose {
	case ThreepidForRegistration:
		return MThreepidDenied.WithMessage("This server sends no email or SMS, so it cannot register accounts by email address or phone number")
	case ThreepidForPasswordReset:
		return MThreepidDenied.WithMessage("This server sends no email or SMS, so it cannot reset passwords that way; ask the server's owner to set a new password")
	default:
		return MThreepidMediumNotSupported.WithMessage("This server cannot add email addresses or phone numbers to accounts")
	}
}

// ValidateClientSecret checks a client_secret against the spec's grammar:
// 1 to 255 characters from [0-9a-zA-Z.=_-].
func ValidateClientSecret(secret string) error {
	if secret == "" {
		return MMissingParam.WithMessage("Missing client_secret")
	}
	if len(secret) > 255 {
		return mautrix.MInvalidParam.WithMessage("client_secret must be at most 255 characters")
	}
	for _, c := range secret {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".=_-", c)) {
			return mautrix.MInvalidParam.WithMessage("client_secret may only contain 0-9, a-z, A-Z and . = _ -")
		}
	}
	return nil
}

// ErrNoThreepidSession is the answer to adding a 3PID from a validation
// session: no session can exist, as this server never validates 3PIDs.
// The status is 400, as Synapse answers /account/3pid/add when the session
// is not validated (the spec does not say).
var ErrNoThreepidSession = MThreepidAuthFailed.WithStatus(http.StatusBadRequest).
	WithMessage("No validated 3PID session found: this server does not validate email addresses or phone numbers")

// CheckThreepidCreds checks the client_secret and sid that name a 3PID
// validation session.
func CheckThreepidCreds(clientSecret, sid string) error {
	if err := ValidateClientSecret(clientSecret); err != nil {
		return err
	}
	if sid == "" {
		return MMissingParam.WithMessage("Missing sid")
	}
	return nil
}

// AddThreepid adds the 3PID a validation session proved to a user's account
// (/account/3pid/add, after user-interactive auth). No session can exist.
func (s *Service) AddThreepid(ctx context.Context, userID id.UserID, clientSecret, sid string) error {
	if err := CheckThreepidCreds(clientSecret, sid); err != nil {
		return err
	}
	return ErrNoThreepidSession
}

// CheckThreepid checks the medium and address of a 3PID a request names.
func CheckThreepid(medium, address string) error {
	if medium == "" || address == "" {
		return MMissingParam.WithMessage("Missing medium or address")
	}
	if medium != MediumEmail && medium != MediumMSISDN {
		return mautrix.MInvalidParam.WithMessage("medium must be email or msisdn")
	}
	return nil
}

// UnbindNoSupport is the id_server_unbind_result when no identity server was
// asked to unbind anything: Palpo binds nothing, so it knows of no identity
// server to ask.
const UnbindNoSupport = "no-support"

// plausibleEmail accepts local@domain without spaces: a real check needs
// sending mail, which this server cannot do.
func plausibleEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(s, " \t\r\n") &&
		!strings.Contains(domain, "@") && len(s) <= 500
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// plausiblePhoneNumber accepts digits with the usual separators.
func plausiblePhoneNumber(s string) bool {
	digits := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.ContainsRune("+-. ()", c):
		default:
			return false
		}
	}
	return digits >= 3 && digits <= 20
}
