package clientapi

import "github.com/palpo-im/palpo-desktop/server/httpapi"

func (a *API) registerProfile(rt *httpapi.Router) {}
