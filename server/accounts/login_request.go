package accounts

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Login types and user identifier types of POST /login.
const (
	LoginTypePassword = "m.login.password"
	LoginTypeToken    = "m.login.token"

	IdentifierUser       = "m.id.user"
	IdentifierThirdParty = "m.id.thirdparty"
	IdentifierPhone      = "m.id.phone"
)

// maxDeviceIDLength bounds client-chosen device IDs, as Synapse does: they
// are stored and echoed to every client the user shares encrypted rooms with.
const maxDeviceIDLength = 512

// LoginIdentifier is the "identifier" object of a login request.
type LoginIdentifier struct {
	Type    string `json:"type"`
	User    string `json:"user"`
	Medium  string `json:"medium"`
	Address string `json:"address"`
	Country string `json:"country"`
	Phone   string `json:"phone"`
}

// LoginRequest is the body of POST /login.
type LoginRequest struct {
	Type       string           `json:"type"`
	Identifier *LoginIdentifier `json:"identifier"`
	// User, Medium and Address are the deprecated pre-identifier fields,
	// still sent by some old clients and bots.
	User                     string      `json:"user"`
	Medium                   string      `json:"medium"`
	Address                  string      `json:"address"`
	Password                 string      `json:"password"`
	Token                    string      `json:"token"`
	DeviceID                 id.DeviceID `json:"device_id"`
	InitialDeviceDisplayName string      `json:"initial_device_display_name"`
	RefreshToken             bool        `json:"refresh_token"`
}

// errThirdPartyLogin answers identifiers Palpo cannot resolve: it keeps no
// email addresses or phone numbers, so only user names log in. Synapse
// answers unknown identifier types with 400 M_UNKNOWN too.
var errThirdPartyLogin = mautrix.MUnknown.WithStatus(400).WithMessage("This server does not support logging in with an email address or phone number; use your user name")

// Login runs a POST /login request. p carries the client's address and user
// agent; the device fields of req override p's.
func (s *Service) Login(ctx context.Context, req *LoginRequest, p SessionParams) (*LoginResult, error) {
	if len(req.DeviceID) > maxDeviceIDLength {
		return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("device_id must be at most %d characters long", maxDeviceIDLength))
	}
	p.DeviceID = req.DeviceID
	p.DisplayName = truncateDeviceName(req.InitialDeviceDisplayName)
	p.WantsRefresh = req.RefreshToken
	switch req.Type {
	case "":
		return nil, MMissingParam.WithMessage("Missing login type")
	case LoginTypePassword:
		user, err := loginUser(req)
		if err != nil {
			return nil, err
		}
		if req.Password == "" {
			return nil, MMissingParam.WithMessage("Missing password")
		}
		return s.LoginWithPassword(ctx, user, req.Password, p)
	case LoginTypeToken:
		if req.Token == "" {
			return nil, MMissingParam.WithMessage("Missing token")
		}
		return s.LoginWithToken(ctx, req.Token, p)
	}
	return nil, mautrix.MUnknown.WithStatus(400).WithMessage("Unknown login type " + req.Type)
}

// loginUser finds the user name a password login names, from the
// identifier or, for old clients, the top-level user field.
func loginUser(req *LoginRequest) (string, error) {
	if req.Identifier == nil {
		switch {
		case req.User != "":
			return req.User, nil
		case req.Medium != "" || req.Address != "":
			return "", errThirdPartyLogin
		}
		return "", MMissingParam.WithMessage("Missing identifier")
	}
	switch req.Identifier.Type {
	case IdentifierUser:
		if req.Identifier.User == "" {
			return "", MMissingParam.WithMessage("Missing user in identifier")
		}
		return req.Identifier.User, nil
	case IdentifierThirdParty, IdentifierPhone:
		return "", errThirdPartyLogin
	case "":
		return "", MMissingParam.WithMessage("Missing identifier type")
	}
	return "", mautrix.MUnknown.WithStatus(400).WithMessage("Unknown login identifier type " + req.Identifier.Type)
}

// LoginFlow is one entry of GET /login.
type LoginFlow struct {
	Type string `json:"type"`
	// GetLoginToken tells unauthenticated clients that a logged-in client
	// can mint them a login token (POST /login/get_token), for QR sign-in.
	GetLoginToken bool `json:"get_login_token,omitempty"`
}

// LoginFlows are the login types Palpo accepts.
func (s *Service) LoginFlows() []LoginFlow {
	return []LoginFlow{{Type: LoginTypePassword}, {Type: LoginTypeToken, GetLoginToken: true}}
}
