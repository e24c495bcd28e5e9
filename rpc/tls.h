// TLS for boad and its clients (docs/security.md): the client's TLS settings from flags and
// environment, a check of certificate files that names what is wrong with them, and the
// diagnosis of a failed handshake (gRPC itself only says that the connection failed).
#pragma once

#include <string>

#include "common/util/status.h"

namespace boa::rpc {

// boa-client's TLS: on when any of these is set (or `enabled`, for the system's roots).
struct TlsOptions {
  bool enabled = false;
  std::string ca;           // --tls-ca / $BOA_TLS_CA: CA certificates (PEM) that sign boad's certificate
  std::string cert, key;    // --tls-cert, --tls-key / $BOA_TLS_CERT, $BOA_TLS_KEY: this client's (mutual TLS)
  std::string server_name;  // --tls-server-name / $BOA_TLS_SERVER_NAME: the name boad's certificate must carry
  // Flags over the environment; `enabled` is set when anything is.
  TlsOptions WithEnvironment() const;
};

// What the PEM files are for, in messages: "tls_cert" (a config key) or "--tls-cert".
struct CertificateFiles {
  std::string cert, key, ca;          // paths; key and ca may be empty
  std::string cert_name, key_name, ca_name;
};
// Reads and checks the files as a TLS peer would use them: each parses, the key belongs to
// the certificate, the certificate is valid now. One line naming the file and what is wrong.
Status CheckCertificateFiles(const CertificateFiles& files);

// Why a TLS connection to `address` (HOST:PORT) fails, found by a handshake of its own:
// "certificate has expired", "not signed by a CA in --tls-ca", "made for other names",
// "boad requires a client certificate", "boad does not speak TLS". Unavailable with that
// reason; Ok when the handshake succeeds (the failure was elsewhere).
Status DiagnoseTls(const std::string& address, const TlsOptions& tls);

}  // namespace boa::rpc
