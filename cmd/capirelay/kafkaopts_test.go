package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/internal/config"
)

// selfSigned writes a CA-signed server certificate for 127.0.0.1 and returns
// the server TLS config and the CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "capirelay-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}, ca
}

// The kafka section's TLS and SASL settings reach the wire: a client built
// from them talks to a TLS + SCRAM cluster, and a wrong password or an
// untrusted CA fails.
func TestKafkaOptsTLSAndSASL(t *testing.T) {
	serverTLS, caFile := selfSigned(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "relay", "s3cret-pass"), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPIRELAY_TEST_SASL_PW", "wrong-pass")
	base := config.Kafka{Brokers: cluster.ListenAddrs(), ClientID: "t",
		TLS:  config.TLS{CAFile: caFile},
		SASL: config.SASL{Mechanism: "SCRAM-SHA-512", Username: "relay", PasswordFile: pwFile}}
	ping := func(k config.Kafka) error {
		opts, err := kafkaOpts(k)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("x")}).FirstErr()
	}
	if err := ping(base); err != nil {
		t.Fatalf("TLS + SCRAM-SHA-512 from the config failed: %v", err)
	}
	wrongPW := base
	wrongPW.SASL.PasswordFile, wrongPW.SASL.PasswordEnv = "", "CAPIRELAY_TEST_SASL_PW"
	if err := ping(wrongPW); err == nil {
		t.Fatal("a wrong SASL password must fail")
	} else if strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error leaks the password: %v", err)
	}
	noCA := base
	noCA.TLS.CAFile = ""
	noCA.TLS.Enabled = true
	if err := ping(noCA); err == nil {
		t.Fatal("an untrusted server certificate must fail")
	}
	badMech := base
	badMech.SASL.PasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := kafkaOpts(badMech); err == nil || !strings.Contains(err.Error(), "sasl.password") {
		t.Fatalf("a missing password file must be reported: %v", err)
	}
}
