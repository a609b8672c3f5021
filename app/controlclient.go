package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
)

// controlClient calls the running server's admin API with the local-control
// secret from control.json (control.go).
type controlClient struct {
	url   string
	token string
	file  string // control.json's path, for messages
	http  *http.Client
}

// dialControl reads the running server's control file. The caller found
// the data directory locked, so a server (or another command) owns it.
func dialControl(dataDir string) (*controlClient, error) {
	path := filepath.Join(dataDir, controlFileName)
	c, err := readControlFile(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the data directory %s is in use but its control file %s is missing: "+
			"Palpo may be starting or stopping, or another palpo command is using the directory; try again in a moment, "+
			"and if this persists, restart Palpo", dataDir, path)
	}
	if err != nil {
		return nil, err
	}
	// No proxy: the server is on this computer, and the secret must not
	// travel anywhere else (Go's default would proxy a LAN address).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	// Deactivating someone in many rooms sends a leave event to each, so
	// the limit is generous; it only guards against a server that hangs.
	return &controlClient{url: c.URL, token: c.Token, file: path, http: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// do sends body as JSON and decodes a 2xx answer into out. An error answer
// becomes the server's mautrix.RespError, which cliMessage shows.
func (c *controlClient) do(ctx context.Context, method, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("control file %s: bad url: %w", c.file, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// err names the URL, never the secret (it is in a header).
		return fmt.Errorf("the running Palpo does not answer at the address in %s "+
			"(if it is stopping, try again in a moment): %w", c.file, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the server's answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var re mautrix.RespError
		if json.Unmarshal(raw, &re) != nil || re.ErrCode == "" {
			return fmt.Errorf("the running Palpo answered %s to %s %s", resp.Status, method, path)
		}
		re.StatusCode = resp.StatusCode
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("the running Palpo at %s refused the secret in %s (%s: %s); the file is stale: restart Palpo",
				c.url, c.file, re.ErrCode, re.Err)
		}
		return re
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("the running Palpo's answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

const adminPrefix = "/_synapse/admin"

func userPath(version string, userID id.UserID) string {
	return adminPrefix + "/" + version + "/users/" + url.PathEscape(string(userID))
}

// createUser is PUT /v2/users/{userId}, which answers 201 for a new
// account. The command checked beforehand that the account did not exist.
func (c *controlClient) createUser(ctx context.Context, userID id.UserID, password string, admin bool, displayName string) error {
	body := map[string]any{"password": password, "admin": admin}
	if displayName != "" {
		body["displayname"] = displayName
	}
	return c.do(ctx, http.MethodPut, userPath("v2", userID), body, nil)
}

func (c *controlClient) resetPassword(ctx context.Context, userID id.UserID, password string, logoutDevices bool) error {
	return c.do(ctx, http.MethodPost, adminPrefix+"/v1/reset_password/"+url.PathEscape(string(userID)),
		map[string]any{"new_password": password, "logout_devices": logoutDevices}, nil)
}

func (c *controlClient) deactivate(ctx context.Context, userID id.UserID, erase bool) error {
	return c.do(ctx, http.MethodPost, adminPrefix+"/v1/deactivate/"+url.PathEscape(string(userID)),
		map[string]any{"erase": erase}, nil)
}

func (c *controlClient) reactivate(ctx context.Context, userID id.UserID, password string) error {
	return c.do(ctx, http.MethodPut, userPath("v2", userID), map[string]any{"deactivated": false, "password": password}, nil)
}

func (c *controlClient) createRegistrationToken(ctx context.Context, n accounts.NewRegistrationToken) (*accounts.RegistrationTokenInfo, error) {
	body := map[string]any{}
	if n.Token != "" {
		body["token"] = n.Token
	}
	if n.UsesAllowed != nil {
		body["uses_allowed"] = *n.UsesAllowed
	}
	if n.ExpiryTime != nil {
		body["expiry_time"] = *n.ExpiryTime
	}
	var out struct {
		Token       string `json:"token"`
		UsesAllowed *int   `json:"uses_allowed"`
		Pending     int    `json:"pending"`
		Completed   int    `json:"completed"`
		ExpiryTime  *int64 `json:"expiry_time"`
	}
	if err := c.do(ctx, http.MethodPost, adminPrefix+"/v1/registration_tokens/new", body, &out); err != nil {
		return nil, err
	}
	return &accounts.RegistrationTokenInfo{Token: out.Token, UsesAllowed: out.UsesAllowed, Pending: out.Pending,
		Completed: out.Completed, ExpiryTime: out.ExpiryTime}, nil
}

func (c *controlClient) deleteRegistrationToken(ctx context.Context, token string) error {
	return c.do(ctx, http.MethodDelete, adminPrefix+"/v1/registration_tokens/"+url.PathEscape(token), nil, nil)
}
