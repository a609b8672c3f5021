package accounts

// Registration's read-only endpoints leak information (which user names
// exist, which registration tokens are valid), so they are rate-limited per
// address too. Each gets its own bucket, at the register_per_address rate,
// so that a person checking a few user names while typing does not use up
// the attempts that the registration itself needs.

// CheckUsernameQueryRate spends one /register/available query of an address.
func (s *Service) CheckUsernameQueryRate(ip string) error {
	if ok, wait := s.limiters.registerAddr.take("available|"+ip, s.Now()); !ok {
		return limitExceeded(wait)
	}
	return nil
}

// CheckTokenValidityRate spends one registration-token validity query of an
// address: the spec asks servers to rate-limit it against brute force.
func (s *Service) CheckTokenValidityRate(ip string) error {
	if ok, wait := s.limiters.registerAddr.take("validity|"+ip, s.Now()); !ok {
		return limitExceeded(wait)
	}
	return nil
}
