//! External lines: the registration client that keeps SIP trunks registered at providers.
