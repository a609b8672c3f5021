package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// maxUserIDLength is the spec's limit on a whole user ID.
const maxUserIDLength = 255

// ValidateLocalpart checks a requested user name: the spec's historical
// grammar is wider, but new user IDs must use [a-z0-9._=-/+]; Synapse also
// refuses names starting with '_' (appservice namespaces) and all-digit names
// (kept for generated IDs).
func (s *Service) ValidateLocalpart(localpart string) error {
	if localpart == "" {
		return mautrix.MInvalidUsername.WithMessage("User name must not be empty")
	}
	for _, c := range localpart {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("._=-/+", c)) {
			return mautrix.MInvalidUsername.WithMessage("User name may only contain a-z, 0-9, and . _ = - / +")
		}
	}
	if localpart[0] == '_' {
		return mautrix.MInvalidUsername.WithMessage("User name may not start with '_'")
	}
	if strings.Trim(localpart, "0123456789") == "" {
		return mautrix.MInvalidUsername.WithMessage("User name may not be only digits")
	}
	if len(s.UserID(localpart)) > maxUserIDLength {
		return mautrix.MInvalidUsername.WithMessage(fmt.Sprintf("User ID must be at most %d characters", maxUserIDLength))
	}
	return nil
}

// reserved tells whether only an admin may take a localpart.
func (s *Service) reserved(localpart string) bool {
	for _, re := range s.reservedRE {
		if re.MatchString(localpart) {
			return true
		}
	}
	return false
}

// RequestedLocalpart is the user name a /register request asks for, lower-
// cased as Synapse does so that "Alice" registers @alice rather than being
// refused (login already finds users whatever the case). Only ASCII letters
// are lowered: a non-ASCII letter whose lower case is ASCII (the Kelvin
// sign's is "k") must not pass for a look-alike name, so it stays invalid.
func RequestedLocalpart(username string) string { return lower(username) }

// CheckUsernameAvailable answers /register/available: the name is valid,
// not reserved and not taken.
func (s *Service) CheckUsernameAvailable(ctx context.Context, localpart string) error {
	if err := s.ValidateLocalpart(localpart); err != nil {
		return err
	}
	if s.reserved(localpart) {
		return mautrix.MExclusive.WithMessage("This user name is reserved")
	}
	taken, err := s.db.UserExists(ctx, s.UserID(localpart))
	if err != nil {
		return err
	}
	if taken {
		return mautrix.MUserInUse.WithMessage("This user name is already taken")
	}
	return nil
}

// RegistrationFlows are the UIA flows registration offers in the configured
// mode (none when registration is closed).
func (s *Service) RegistrationFlows() [][]string {
	switch s.cfg.Mode {
	case config.RegistrationOpen:
		return [][]string{{StageDummy}, {StageRegistrationToken}}
	case config.RegistrationToken:
		return [][]string{{StageRegistrationToken}}
	}
	return nil
}

// RegistrationEnabled tells whether clients may register at all.
func (s *Service) RegistrationEnabled() bool { return s.cfg.Mode != config.RegistrationClosed }

// CheckRegisterRate spends one registration attempt of an address.
func (s *Service) CheckRegisterRate(ip string) error {
	if ok, wait := s.limiters.registerAddr.take(ip, s.Now()); !ok {
		return limitExceeded(wait)
	}
	return nil
}

// NewAccount describes an account to create.
type NewAccount struct {
	Localpart string // empty: generate one
	Password  string // empty: no password login
	Admin     bool
	// ByAdmin lets reserved names through (the owner, the CLI, the admin API).
	ByAdmin bool
	// Login, when not nil, also logs the new account in.
	Login *SessionParams
	// RegistrationToken is spent by this registration.
	RegistrationToken string
	DisplayName       string
}

// CreateAccount creates a user (and, if asked, its first session) after
// checking the name and the password policy.
func (s *Service) CreateAccount(ctx context.Context, a NewAccount) (*LoginResult, error) {
	localpart := a.Localpart
	if localpart == "" {
		var err error
		if localpart, err = s.generateLocalpart(ctx); err != nil {
			return nil, err
		}
	} else {
		if err := s.ValidateLocalpart(localpart); err != nil {
			return nil, err
		}
		if !a.ByAdmin && s.reserved(localpart) {
			return nil, mautrix.MExclusive.WithMessage("This user name is reserved")
		}
	}
	if a.DisplayName != "" {
		if err := checkDisplayName(a.DisplayName); err != nil {
			return nil, err
		}
	}
	u := &storage.User{UserID: s.UserID(localpart), IsAdmin: a.Admin, CreatedTS: s.nowMS()}
	if a.Password != "" {
		if err := s.CheckPasswordStrength(a.Password); err != nil {
			return nil, err
		}
		hash, err := HashPassword(a.Password)
		if err != nil {
			return nil, err
		}
		u.PasswordHash = hash
	}
	var ns *storage.NewSession
	res := &LoginResult{UserID: u.UserID}
	if a.Login != nil {
		ns, res = s.newSession(u.UserID, *a.Login)
	}
	err := s.db.Register(ctx, u, ns, a.RegistrationToken, s.nowMS())
	switch {
	case errors.Is(err, storage.ErrUserExists):
		return nil, mautrix.MUserInUse.WithMessage("This user name is already taken")
	case errors.Is(err, storage.ErrTokenUsedUp):
		return nil, mautrix.MForbidden.WithMessage("The registration token is no longer valid")
	case err != nil:
		return nil, err
	}
	displayName := a.DisplayName
	if displayName == "" {
		displayName = localpart
	}
	if err := s.SetProfileField(ctx, u.UserID, storage.ProfileDisplayName, displayName); err != nil {
		return nil, err
	}
	s.log.Info("account created", "user", u.UserID, "admin", a.Admin)
	return res, nil
}

// generateLocalpart picks an unused all-digit localpart, as Synapse does
// for registrations without a user name.
func (s *Service) generateLocalpart(ctx context.Context) (string, error) {
	for range 10 {
		n, err := rand.Int(rand.Reader, big.NewInt(1e9))
		if err != nil {
			return "", err
		}
		lp := n.String()
		taken, err := s.db.UserExists(ctx, s.UserID(lp))
		if err != nil {
			return "", err
		}
		if !taken {
			return lp, nil
		}
	}
	return "", errors.New("could not generate a free user name")
}

// GuestRegistrationRefused is the answer to kind=guest: Palpo has no guests.
var GuestRegistrationRefused = MGuestForbidden.WithMessage("Guest access is disabled on this server")
